package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"gopkg.in/yaml.v3"

	"github.com/triage-dev/triage/connectors/bot"
	"github.com/triage-dev/triage/connectors/httpapi"
	"github.com/triage-dev/triage/connectors/postgres"
	"github.com/triage-dev/triage/connectors/slack"
	"github.com/triage-dev/triage/connectors/whatsapp"
	"github.com/triage-dev/triage/engine"
	"github.com/triage-dev/triage/reload"
	"github.com/triage-dev/triage/rules"
	"github.com/triage-dev/triage/server"
)

type serveCmd struct {
	Rules    string `help:"Rule directory (overrides the config file)."`
	Config   string `help:"Server configuration file (YAML; $${VAR} expands from the environment)."`
	Listen   string `help:"Address to listen on (overrides the config file; default 127.0.0.1:8080)."`
	Database string `help:"PostgreSQL URL (or TRIAGE_DATABASE_URL)." env:"TRIAGE_DATABASE_URL"`
}

// serveConfig is the configuration file of spec section 10.
type serveConfig struct {
	Listen   string          `yaml:"listen"`
	Rules    string          `yaml:"rules"`
	Database string          `yaml:"database"`
	WhatsApp *whatsAppConfig `yaml:"whatsapp"`
	Slack    *slackConfig    `yaml:"slack"`
	Bot      *botConfig      `yaml:"bot"`
	Access   []accessEntry   `yaml:"access"`
	// Evaluation and Delivery tune the daemon; the defaults suit most.
	Evaluation evaluationConfig `yaml:"evaluation"`
	Delivery   deliveryConfig   `yaml:"delivery"`
	// Poll is how often the timer and the dispatcher look for work
	// another replica queued in the shared database.
	Poll string `yaml:"poll"`
}

type evaluationConfig struct {
	Shards   int `yaml:"shards"`
	MaxBatch int `yaml:"max_batch"`
}

type deliveryConfig struct {
	Workers     int    `yaml:"workers"`
	Attempts    int    `yaml:"attempts"`
	BotAttempts int    `yaml:"bot_attempts"`
	Timeout     string `yaml:"timeout"`
	Lease       string `yaml:"lease"`
	Backoff     string `yaml:"backoff"`
	MaxBackoff  string `yaml:"max_backoff"`
	MaxPending  int    `yaml:"max_pending"`
}

// durations parses the configuration's durations, naming the bad one.
func (c *serveConfig) durations() (poll time.Duration, r server.RetryPolicy, err error) {
	parse := func(name, v string, into *time.Duration) {
		if v == "" || err != nil {
			return
		}
		d, e := time.ParseDuration(v)
		if e != nil || d <= 0 {
			err = usagef("config %s: %q is not a positive duration (like 30s or 2m)", name, v)
			return
		}
		*into = d
	}
	parse("poll", c.Poll, &poll)
	parse("delivery.timeout", c.Delivery.Timeout, &r.Timeout)
	parse("delivery.lease", c.Delivery.Lease, &r.Lease)
	parse("delivery.backoff", c.Delivery.Backoff, &r.Base)
	parse("delivery.max_backoff", c.Delivery.MaxBackoff, &r.Max)
	r.Attempts, r.BotAttempts = c.Delivery.Attempts, c.Delivery.BotAttempts
	return poll, r, err
}

type whatsAppConfig struct {
	PhoneNumberID string `yaml:"phone_number_id"`
	AccessToken   string `yaml:"access_token"`
	AppSecret     string `yaml:"app_secret"`
	VerifyToken   string `yaml:"verify_token"`
	APIURL        string `yaml:"api_url"`
}

type slackConfig struct {
	Webhooks map[string]string `yaml:"webhooks"`
	BotToken string            `yaml:"bot_token"`
	APIURL   string            `yaml:"api_url"`
}

type botConfig struct {
	URL     string `yaml:"url"`
	FAQ     string `yaml:"faq"`
	Timeout string `yaml:"timeout"`
}

type accessEntry struct {
	Name  string   `yaml:"name"`
	Token string   `yaml:"token"`
	Role  string   `yaml:"role"`
	Agent string   `yaml:"agent"`
	Teams []string `yaml:"teams"`
}

// loadServeConfig reads the file, refusing unknown keys so a typo is an
// error, not a default. ${VAR} expands from the environment inside scalar
// values only, after the YAML is parsed: a secret holding a quote, a # or
// a newline stays one value instead of breaking the file or adding keys.
//
// An unset variable expands to empty (the spec's `database:
// ${TRIAGE_DATABASE_URL}` means "in memory" when it is unset); unset lists
// them so the caller can say so.
func loadServeConfig(path string) (cfg serveConfig, unset []string, err error) {
	if path == "" {
		return cfg, nil, nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return cfg, nil, usageError{fmt.Errorf("read config: %w", err)}
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return cfg, nil, usageError{fmt.Errorf("config %s: %w", path, err)}
	}
	if len(doc.Content) == 0 {
		return cfg, nil, nil // an empty file is all defaults
	}
	expandScalars(&doc, func(name string) string {
		v, ok := os.LookupEnv(name)
		if !ok {
			unset = append(unset, name)
		}
		return v
	})
	// yaml.v3's Node.Decode ignores KnownFields, so the expanded tree is
	// encoded again and decoded strictly.
	expanded, err := yaml.Marshal(&doc)
	if err != nil {
		return cfg, unset, fmt.Errorf("config %s: %w", path, err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(expanded))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil && !errors.Is(err, io.EOF) {
		return cfg, unset, usageError{fmt.Errorf("config %s: %w", path, err)}
	}
	if w := cfg.WhatsApp; w != nil {
		var empty []string
		for _, f := range []struct{ name, v string }{{"phone_number_id", w.PhoneNumberID}, {"access_token", w.AccessToken}, {"app_secret", w.AppSecret}, {"verify_token", w.VerifyToken}} {
			if strings.TrimSpace(f.v) == "" {
				empty = append(empty, f.name)
			}
		}
		if len(empty) > 0 {
			return cfg, unset, usageError{fmt.Errorf("config %s: whatsapp needs %s", path, strings.Join(empty, ", "))}
		}
	}
	return cfg, unset, nil
}

func expandScalars(n *yaml.Node, mapping func(string) string) {
	if n.Kind == yaml.ScalarNode && strings.Contains(n.Value, "$") {
		n.Value = os.Expand(n.Value, mapping)
		if n.Tag != "!!str" {
			n.Tag, n.Style = "!!str", yaml.DoubleQuotedStyle
		}
	}
	for _, c := range n.Content {
		expandScalars(c, mapping)
	}
}

// botAdapter gives the server connectors/bot's Bot.
type botAdapter struct{ b bot.Bot }

func (a botAdapter) AskBot(ctx context.Context, q server.BotQuestion) (server.BotAnswer, error) {
	bq := bot.Question{Conversation: q.Conversation, Contact: q.Contact, Text: q.Text}
	for _, m := range q.History {
		from := bot.FromCustomer
		switch {
		case m.From == "triage":
			from = bot.FromBot
		case strings.HasPrefix(m.From, "agent"):
			from = bot.FromAgent
		}
		bq.History = append(bq.History, bot.Turn{From: from, Text: m.Text, At: m.At})
	}
	ans, err := a.b.Ask(ctx, bq)
	if err != nil {
		return server.BotAnswer{}, err
	}
	return server.BotAnswer{Text: ans.Text, Confidence: ans.Confidence, Topic: ans.Topic, Resolved: ans.Resolved}, nil
}

func (c *serveCmd) Run(io stdio, code *int) error {
	log := slog.New(slog.NewTextHandler(io.err, &slog.HandlerOptions{Level: slog.LevelInfo}))
	cfg, unset, err := loadServeConfig(c.Config)
	if err != nil {
		return err
	}
	if len(unset) > 0 {
		log.Warn("config refers to unset environment variables; they expand to empty", "variables", strings.Join(unset, ", "))
	}
	if c.Rules != "" {
		cfg.Rules = c.Rules
	}
	if c.Listen != "" {
		cfg.Listen = c.Listen
	}
	if c.Database != "" {
		cfg.Database = c.Database
	}
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:8080"
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	d, err := newDaemon(ctx, cfg, log, io.err, seams{})
	if err != nil {
		return err
	}
	defer d.close()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return usageError{fmt.Errorf("listen: %w", err)}
	}
	if d.store == nil {
		log.Warn("state is in memory: conversations, the audit log and undelivered work are lost when the process stops; give --database (or TRIAGE_DATABASE_URL) to keep them in PostgreSQL")
	} else {
		log.Info("state is in PostgreSQL: every acknowledged event is committed, and replicas may share the database")
	}
	set := d.holder.Set()
	log.Info("triage serving", "listen", ln.Addr().String(), "rules", cfg.Rules, "version", set.Version(), "rule_count", len(set.Rules()))

	// The server runs on a context of its own: ctx ends at SIGINT/SIGTERM,
	// and Close below must still find the shards and the dispatcher
	// running to finish what was accepted (Close stops them).
	d.srv.Start(context.WithoutCancel(ctx))
	go func() {
		if err := d.holder.Watch(ctx, 200*time.Millisecond, 5*time.Second); err != nil {
			log.Error("rule watcher stopped; SIGHUP and POST /-/reload still reload", "error", err)
		}
	}()
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				if err := d.srv.Reload(ctx); err != nil {
					log.Error("reload on SIGHUP rejected", "error", err)
				}
			}
		}
	}()
	hs := &http.Server{Handler: d.api.Handler(), ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second, WriteTimeout: 30 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case <-ctx.Done():
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	}
	log.Info("shutting down: finishing accepted events and deliveries")
	sctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	_ = hs.Shutdown(sctx)
	if err := d.srv.Close(sctx); err != nil {
		log.Error("shutdown incomplete", "error", err)
	}
	return nil
}

// daemon is what serve runs, built from the configuration: the rule
// holder, the store (nil: the server's memory), the server and its HTTP
// surface.
type daemon struct {
	holder *reload.Holder
	store  engine.Store
	srv    *server.Server
	api    *httpapi.Server
	reg    *prometheus.Registry
}

func (d *daemon) close() {
	if d.store != nil {
		d.store.Close()
	}
}

// seams are what tests set beyond the configuration file.
type seams struct {
	now           func() time.Time // the wall clock; nil is time.Now
	slackInterval time.Duration    // the Slack client's pace per channel; 0 is its default
}

// newDaemon builds everything serve runs from cfg; rule problems are
// written to errw one per line.
func newDaemon(ctx context.Context, cfg serveConfig, log *slog.Logger, errw io.Writer, sm seams) (*daemon, error) {
	if cfg.Rules == "" {
		return nil, usagef("serve needs --rules DIR (or rules: in the config file)")
	}
	poll, retry, err := cfg.durations()
	if err != nil {
		return nil, err
	}
	holder, err := reload.New(cfg.Rules, rules.Options{}, log)
	if err != nil {
		if es, ok := rules.AsErrors(err); ok {
			for _, e := range es {
				fmt.Fprintln(errw, e.Error())
			}
		}
		return nil, fmt.Errorf("rules in %s do not load: %w", cfg.Rules, err)
	}
	set := holder.Set()

	var senders server.Senders
	apiCfg := httpapi.Config{Logger: log}
	if w := cfg.WhatsApp; w != nil {
		senders.WhatsApp = &whatsapp.Client{BaseURL: w.APIURL, PhoneNumberID: w.PhoneNumberID, Token: w.AccessToken, HTTP: outboundHTTP()}
		apiCfg.WhatsApp = httpapi.WhatsAppConfig{AppSecret: w.AppSecret, VerifyToken: w.VerifyToken, BusinessNumber: w.PhoneNumberID}
	} else {
		log.Info("no whatsapp section: replies and templates are written to the log, not sent; the webhook refuses payloads")
	}
	if s := cfg.Slack; s != nil {
		sc, err := slack.New(slack.Config{Webhooks: s.Webhooks, BotToken: s.BotToken, APIURL: s.APIURL, MinInterval: sm.slackInterval})
		if err != nil {
			return nil, usageError{fmt.Errorf("config slack: %w", err)}
		}
		senders.Slack = sc
	} else {
		log.Info("no slack section: notifications are written to the log, not sent")
	}
	bc := bot.Config{}
	if b := cfg.Bot; b != nil {
		bc.URL, bc.FAQ = b.URL, b.FAQ
		if b.Timeout != "" {
			if bc.Timeout, err = time.ParseDuration(b.Timeout); err != nil {
				return nil, usagef("config bot.timeout: %v", err)
			}
		}
	} else if faq := filepath.Join(filepath.Dir(filepath.Clean(cfg.Rules)), "faq.yaml"); fileExists(faq) {
		bc.FAQ = faq
		log.Info("no bot section: using the built-in FAQ bot", "faq", faq)
	} else {
		log.Info("no bot section and no faq.yaml beside the rules: every question is answered not confident, so the rules escalate")
	}
	if bc.URL != "" || bc.FAQ != "" {
		b, err := bot.New(bc)
		if err != nil {
			return nil, usageError{fmt.Errorf("config bot: %w", err)}
		}
		senders.Bot = botAdapter{b}
	}
	for _, a := range cfg.Access {
		teams := a.Teams
		if a.Role == "agent" && len(teams) == 0 {
			if ag := set.Agent(a.Agent); ag != nil {
				teams = []string{ag.Team}
			}
		}
		apiCfg.Access = append(apiCfg.Access, httpapi.Access{Name: a.Name, Token: a.Token, Role: a.Role, Agent: a.Agent, Teams: teams})
	}
	if len(cfg.Access) == 0 {
		log.Warn("no access entries: the /v1 API refuses every call (401); add access: entries to the config")
	}

	d := &daemon{holder: holder}
	if cfg.Database != "" {
		pg, err := postgres.Open(ctx, cfg.Database, postgres.Options{Migrate: true, Logger: log})
		if err != nil {
			return nil, fmt.Errorf("database: %w", err)
		}
		d.store = pg
	}
	d.reg = prometheus.NewRegistry()
	d.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	apiCfg.Registry, apiCfg.Gatherer = d.reg, d.reg
	d.srv, err = server.New(server.Options{
		Holder: holder, Store: d.store, Senders: senders, Registry: d.reg, Logger: log, Now: sm.now, Poll: poll, Retry: retry,
		Shards: cfg.Evaluation.Shards, MaxBatch: cfg.Evaluation.MaxBatch,
		Workers: cfg.Delivery.Workers, MaxPending: cfg.Delivery.MaxPending,
	})
	if err != nil {
		d.close()
		return nil, err
	}
	holder.OnReload = d.srv.Reloaded
	if d.api, err = httpapi.New(apiCfg, d.srv); err != nil {
		d.close()
		return nil, usageError{fmt.Errorf("config: %w", err)}
	}
	return d, nil
}

// outboundHTTP is the WhatsApp connector's HTTP client. The dispatcher
// sends from several goroutines at once (server.Options.Workers, 8 by
// default), and the default transport keeps only 2 idle connections per
// host: under load many sends (one in nine in BenchmarkServeWebhooks)
// would otherwise open, and TLS-handshake, a connection of their own.
func outboundHTTP() *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 32
	return &http.Client{Timeout: 30 * time.Second, Transport: tr}
}

func fileExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular()
}
