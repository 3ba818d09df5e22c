package httpapi

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Roles of an access entry (spec section 11).
const (
	RoleAgent      = "agent"
	RoleSupervisor = "supervisor"
	RoleAdmin      = "admin"
	RoleService    = "service"
)

// Roles lists the roles in the order of the spec's table.
var Roles = []string{RoleAgent, RoleSupervisor, RoleAdmin, RoleService}

// WhatsAppConfig is what the webhook needs of the whatsapp section of the
// server configuration.
type WhatsAppConfig struct {
	// AppSecret keys the X-Hub-Signature-256 of every webhook POST.
	// Without it the webhook refuses every POST with 503.
	AppSecret string
	// VerifyToken is the token Meta echoes in the subscription handshake.
	// Without it every handshake is refused.
	VerifyToken string
	// BusinessNumber is the phone number id triage answers from; it stands
	// in when a webhook change has no metadata.phone_number_id.
	BusinessNumber string
}

// Access is one entry of the server configuration's access list: a bearer
// token and what its holder may do.
type Access struct {
	// Name says who holds the token, in logs and in the history of what
	// the holder changes. It defaults to Agent, then to "access[i]".
	Name string
	// Token is the bearer token. It is compared in constant time and
	// never logged.
	Token string
	// Role is agent, supervisor, admin or service (spec section 11).
	Role string
	// Agent is the team member id of the holder; required for the agent
	// role.
	Agent string
	// Teams are the teams whose waiting conversations an agent may read.
	Teams []string
}

// Config configures a Server.
type Config struct {
	// WhatsApp configures the webhook.
	WhatsApp WhatsAppConfig
	// Access lists the bearer tokens of the API and their roles.
	Access []Access
	// Registry receives the server's metrics. Nil keeps them in a private
	// registry.
	Registry prometheus.Registerer
	// Gatherer is what GET /metrics exposes. Nil uses Registry when it is
	// also a Gatherer (a *prometheus.Registry is), else the private
	// registry.
	Gatherer prometheus.Gatherer
	// Logger receives the server's logs. Nil discards them.
	Logger *slog.Logger
}

// Webhook payload results, the values of triage_webhook_payloads_total's
// result label.
const (
	ResultAccepted     = "accepted"
	ResultBadSignature = "bad_signature"
	ResultTooLarge     = "too_large"
	ResultMalformed    = "malformed"
	ResultUnavailable  = "unavailable"
)

var webhookResults = []string{ResultAccepted, ResultBadSignature, ResultTooLarge, ResultMalformed, ResultUnavailable}

// maxEventsBody is the largest POST /v1/events body, in bytes.
const maxEventsBody = 4 << 20

// otherRoute is the route label of requests no route matched.
const otherRoute = "other"

// Server serves triage's HTTP surface over a Backend. Create it with New.
type Server struct {
	b        Backend
	wa       WhatsAppConfig
	log      *slog.Logger
	tokens   []principal
	mux      *http.ServeMux
	routes   map[string]bool
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	payloads *prometheus.CounterVec
}

// principal is an authenticated caller: an access entry, with its token
// hashed.
type principal struct {
	hash  [sha256.Size]byte
	name  string
	role  string
	agent string
	teams []string
}

// New validates cfg and builds a Server over b. The error lists every
// problem of the configuration, one per line.
func New(cfg Config, b Backend) (*Server, error) {
	var problems []error
	if b == nil {
		problems = append(problems, errors.New("no backend"))
	}
	tokens, errs := principals(cfg.Access)
	problems = append(problems, errs...)

	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	reg, gath := cfg.Registry, cfg.Gatherer
	if reg == nil {
		r := prometheus.NewRegistry()
		reg = r
		if gath == nil {
			gath = r
		}
	}
	if gath == nil {
		if g, ok := reg.(prometheus.Gatherer); ok {
			gath = g
		} else {
			problems = append(problems, errors.New("metrics: no gatherer, and the registry does not gather"))
		}
	}
	if len(problems) > 0 {
		return nil, invalid(problems)
	}
	s := &Server{
		b:      b,
		wa:     cfg.WhatsApp,
		log:    log,
		tokens: tokens,
		mux:    http.NewServeMux(),
		routes: map[string]bool{},
	}
	var err error
	if s.requests, err = register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "triage_http_requests_total",
		Help: "HTTP requests served, by route pattern and status code.",
	}, []string{"route", "code"})); err != nil {
		problems = append(problems, err)
	}
	if s.duration, err = register(reg, prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "triage_http_request_duration_seconds",
		Help:    "Time to serve an HTTP request, by route pattern.",
		Buckets: prometheus.DefBuckets,
	}, []string{"route"})); err != nil {
		problems = append(problems, err)
	}
	if s.payloads, err = register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "triage_webhook_payloads_total",
		Help: "WhatsApp webhook POSTs, by result: accepted, bad_signature, too_large, malformed, unavailable.",
	}, []string{"result"})); err != nil {
		problems = append(problems, err)
	}
	if len(problems) > 0 {
		return nil, invalid(problems)
	}
	for _, r := range webhookResults {
		s.payloads.WithLabelValues(r)
	}

	if cfg.WhatsApp.AppSecret == "" {
		log.Warn("whatsapp webhook disabled: no app secret configured, every POST /webhooks/whatsapp answers 503")
	}
	if cfg.WhatsApp.VerifyToken == "" {
		log.Warn("whatsapp handshake disabled: no verify token configured, every GET /webhooks/whatsapp answers 403")
	}
	if len(tokens) == 0 {
		log.Warn("no access entries configured: the /v1 API and POST /-/reload refuse every call")
	}

	s.route("GET /webhooks/whatsapp", http.HandlerFunc(s.handshake))
	s.route("POST /webhooks/whatsapp", http.HandlerFunc(s.webhook))
	s.route("POST /v1/events", s.authorize(canPostEvents, s.postEvents))
	s.route("GET /v1/conversations/{id}", s.authorize(canReadConversations, s.getConversation))
	s.route("GET /v1/conversations", s.authorize(canReadConversations, s.listConversations))
	s.route("GET /v1/rules", s.authorize(canReadRules, s.getRules))
	s.route("GET /v1/outbound/dead", s.authorize(canReadOutbound, s.listDead))
	s.route("POST /-/reload", s.authorize(canReload, s.reload))
	s.route("GET /metrics", promhttp.HandlerFor(gath, promhttp.HandlerOpts{
		ErrorLog:      promLogger{log},
		ErrorHandling: promhttp.ContinueOnError,
	}))
	s.route("GET /healthz", http.HandlerFunc(s.healthz))
	s.route("GET /readyz", http.HandlerFunc(s.readyz))
	return s, nil
}

// invalid is New's error for the problems found.
func invalid(problems []error) error {
	return fmt.Errorf("httpapi: invalid configuration:\n%w", errors.Join(problems...))
}

// principals validates the access entries and hashes their tokens.
func principals(entries []Access) ([]principal, []error) {
	var problems []error
	out := make([]principal, 0, len(entries))
	seen := map[[sha256.Size]byte]int{}
	for i, a := range entries {
		label := fmt.Sprintf("access[%d]", i)
		if a.Name != "" {
			label += " (" + a.Name + ")"
		}
		bad := func(format string, args ...any) {
			problems = append(problems, fmt.Errorf(label+": "+format, args...))
		}
		switch {
		case a.Token == "":
			bad("no token (is its environment variable set?)")
		case strings.TrimSpace(a.Token) != a.Token:
			bad("token has leading or trailing white space")
		}
		switch a.Role {
		case RoleAgent, RoleSupervisor, RoleAdmin, RoleService:
		case "":
			bad("no role: want agent, supervisor, admin or service")
		default:
			bad("role %q: want agent, supervisor, admin or service", a.Role)
		}
		if a.Role == RoleAgent && strings.TrimSpace(a.Agent) == "" {
			bad("role agent names no agent id (agent: ...)")
		}
		for _, t := range a.Teams {
			if strings.TrimSpace(t) == "" {
				bad("empty team name")
				break
			}
		}
		p := principal{
			hash:  sha256.Sum256([]byte(a.Token)),
			name:  a.Name,
			role:  a.Role,
			agent: a.Agent,
			teams: slices.Clone(a.Teams),
		}
		if p.name == "" {
			p.name = a.Agent
		}
		if p.name == "" {
			p.name = fmt.Sprintf("access[%d]", i)
		}
		if a.Token != "" {
			if j, dup := seen[p.hash]; dup {
				bad("token is the same as access[%d]'s; every token must be unique", j)
			} else {
				seen[p.hash] = i
			}
		}
		out = append(out, p)
	}
	return out, problems
}

// register registers c on reg, or reuses the collector already registered
// under the same description (two servers sharing one registry).
func register[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing, nil
			}
		}
		var zero C
		return zero, fmt.Errorf("metrics: %w", err)
	}
	return c, nil
}

// route registers h under pattern; the pattern is also the route label of
// the request metrics.
func (s *Server) route(pattern string, h http.Handler) {
	s.routes[pattern] = true
	s.mux.Handle(pattern, h)
}

// Handler returns the http.Handler of every route.
func (s *Server) Handler() http.Handler { return s }

// ServeHTTP serves r: it routes it, answers unknown routes and methods with
// a JSON error, counts it in the request metrics, logs it at debug level
// and turns a panic into a 500.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	sw := &statusWriter{ResponseWriter: w}
	route := otherRoute
	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler {
				panic(v)
			}
			s.log.Error("http handler panicked", "route", route, "panic", fmt.Sprint(v))
			if !sw.wrote {
				writeError(sw, http.StatusInternalServerError, "internal error")
			}
		}
		code := sw.code
		if !sw.wrote {
			code = http.StatusOK
		}
		s.requests.WithLabelValues(route, strconv.Itoa(code)).Inc()
		s.duration.WithLabelValues(route).Observe(time.Since(start).Seconds())
		s.log.Debug("http request", "method", r.Method, "path", r.URL.Path, "route", route, "code", code,
			"duration", time.Since(start))
	}()

	h, pattern := s.mux.Handler(r)
	if !s.routes[pattern] {
		s.unrouted(sw, r, h)
		return
	}
	route = pattern
	s.mux.ServeHTTP(sw, r)
}

// unrouted serves a request that matched no route through the mux's own
// handler (404, 405 with Allow, or a redirect to the clean path), turning
// its plain-text errors into JSON ones.
func (s *Server) unrouted(w http.ResponseWriter, r *http.Request, h http.Handler) {
	c := &captureWriter{header: http.Header{}}
	h.ServeHTTP(c, r)
	if c.code == 0 {
		c.code = http.StatusOK
	}
	if c.code >= 400 {
		if allow := c.header.Values("Allow"); len(allow) > 0 {
			w.Header()["Allow"] = allow
		}
		msg := "no such route"
		if c.code == http.StatusMethodNotAllowed {
			msg = "method " + r.Method + " not allowed"
		}
		writeError(w, c.code, msg)
		return
	}
	for k, v := range c.header {
		w.Header()[k] = v
	}
	w.WriteHeader(c.code)
	w.Write(c.body.Bytes())
}

// healthz answers 200 "ok" while the process serves.
func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	writeText(w, http.StatusOK, "ok\n")
}

// readyz answers 200 when the Backend is ready to take traffic, else 503
// with the reason.
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	if err := s.b.Ready(r.Context()); err != nil {
		writeText(w, http.StatusServiceUnavailable, "not ready: "+err.Error()+"\n")
		return
	}
	writeText(w, http.StatusOK, "ok\n")
}

// writeJSON answers code with v as JSON.
func writeJSON(w http.ResponseWriter, code int, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		code = http.StatusInternalServerError
		buf.Reset()
		buf.WriteString(`{"error":"cannot encode the answer"}` + "\n")
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	w.Write(buf.Bytes())
}

// errorBody is every JSON error answer.
type errorBody struct {
	Error string `json:"error"`
}

// writeError answers code with {"error": msg}.
func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, errorBody{Error: msg})
}

// writeText answers code with a plain-text body.
func writeText(w http.ResponseWriter, code int, text string) {
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	w.Write([]byte(text))
}

// statusWriter records the status code a handler answers.
type statusWriter struct {
	http.ResponseWriter
	code  int
	wrote bool
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.wrote && code >= 200 {
		w.code, w.wrote = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if !w.wrote {
		w.code, w.wrote = http.StatusOK, true
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// captureWriter buffers an answer of the mux's own handlers.
type captureWriter struct {
	header http.Header
	code   int
	body   bytes.Buffer
}

func (c *captureWriter) Header() http.Header { return c.header }

func (c *captureWriter) WriteHeader(code int) {
	if c.code == 0 {
		c.code = code
	}
}

func (c *captureWriter) Write(b []byte) (int, error) {
	if c.code == 0 {
		c.code = http.StatusOK
	}
	return c.body.Write(b)
}

// promLogger sends promhttp's errors to the server's logger.
type promLogger struct{ log *slog.Logger }

// Println logs an error of the metrics handler.
func (l promLogger) Println(v ...any) {
	l.log.Error("metrics: " + strings.TrimSuffix(fmt.Sprintln(v...), "\n"))
}
