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
	"github.com/triage-dev/triage/connectors/slack"
	"github.com/triage-dev/triage/connectors/whatsapp"
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
	if cfg.Rules == "" {
		return usagef("serve needs --rules DIR (or rules: in the config file)")
	}
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:8080"
	}
	if cfg.Database != "" {
		return usagef("PostgreSQL storage is not built yet: run without --database (and TRIAGE_DATABASE_URL) to keep state in memory")
	}

	holder, err := reload.New(cfg.Rules, rules.Options{}, log)
	if err != nil {
		if es, ok := rules.AsErrors(err); ok {
			for _, e := range es {
				fmt.Fprintln(io.err, e.Error())
			}
		}
		return fmt.Errorf("rules in %s do not load: %w", cfg.Rules, err)
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
		sc, err := slack.New(slack.Config{Webhooks: s.Webhooks, BotToken: s.BotToken, APIURL: s.APIURL})
		if err != nil {
			return usageError{fmt.Errorf("config slack: %w", err)}
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
				return usagef("config bot.timeout: %v", err)
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
			return usageError{fmt.Errorf("config bot: %w", err)}
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

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	apiCfg.Registry, apiCfg.Gatherer = reg, reg
	srv, err := server.New(server.Options{Holder: holder, Senders: senders, Registry: reg, Logger: log})
	if err != nil {
		return err
	}
	holder.OnReload = srv.Reloaded
	api, err := httpapi.New(apiCfg, srv)
	if err != nil {
		return usageError{fmt.Errorf("config: %w", err)}
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return usageError{fmt.Errorf("listen: %w", err)}
	}
	log.Warn("state is in memory: conversations, the audit log and undelivered work are lost when the process stops (PostgreSQL storage is planned)")
	log.Info("triage serving", "listen", ln.Addr().String(), "rules", cfg.Rules, "version", set.Version(), "rule_count", len(set.Rules()))

	// The server runs on a context of its own: ctx ends at SIGINT/SIGTERM,
	// and Close below must still find the evaluation loop and the
	// dispatcher running to finish what was accepted (Close stops them).
	srv.Start(context.WithoutCancel(ctx))
	go func() {
		if err := holder.Watch(ctx, 200*time.Millisecond, 5*time.Second); err != nil {
			log.Error("rule watcher stopped; SIGHUP and POST /-/reload still reload", "error", err)
		}
	}()
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				if err := srv.Reload(ctx); err != nil {
					log.Error("reload on SIGHUP rejected", "error", err)
				}
			}
		}
	}()
	hs := &http.Server{Handler: api.Handler(), ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second, WriteTimeout: 30 * time.Second}
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
	if err := srv.Close(sctx); err != nil {
		log.Error("shutdown incomplete", "error", err)
	}
	return nil
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
