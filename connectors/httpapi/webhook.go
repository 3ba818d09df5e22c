package httpapi

import (
	"errors"
	"io"
	"net/http"

	"github.com/triage-dev/triage/connectors/whatsapp"
)

// webhookBy is who the webhook's events are submitted by.
const webhookBy = "whatsapp"

// handshake answers Meta's subscription handshake: 200 with hub.challenge
// as plain text when hub.mode is subscribe and hub.verify_token matches,
// else 403.
func (s *Server) handshake(w http.ResponseWriter, r *http.Request) {
	challenge, ok := whatsapp.VerifyHandshake(r.URL.Query(), s.wa.VerifyToken)
	if !ok {
		s.log.Warn("whatsapp: handshake refused", "mode", r.URL.Query().Get("hub.mode"),
			"verify_token_configured", s.wa.VerifyToken != "", "remote", r.RemoteAddr)
		writeText(w, http.StatusForbidden, "forbidden\n")
		return
	}
	writeText(w, http.StatusOK, challenge)
}

// webhook takes a Cloud API webhook POST: it reads at most
// whatsapp.MaxBody bytes (413 beyond), checks the signature over the raw
// bytes (401), parses them (400) and hands the events and statuses to the
// Backend (503 when it cannot take them, so that Meta retries). Nothing
// reaches the Backend unless every check passed.
func (s *Server) webhook(w http.ResponseWriter, r *http.Request) {
	if s.wa.AppSecret == "" {
		s.payloads.WithLabelValues(ResultUnavailable).Inc()
		s.log.Error("whatsapp: webhook POST refused: no app secret configured, so signatures cannot be checked")
		writeError(w, http.StatusServiceUnavailable, "webhook not configured")
		return
	}
	if r.ContentLength > whatsapp.MaxBody {
		s.tooLarge(w, r.ContentLength)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, whatsapp.MaxBody))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			s.tooLarge(w, -1)
			return
		}
		s.payloads.WithLabelValues(ResultMalformed).Inc()
		s.log.Warn("whatsapp: webhook body unreadable", "error", err)
		writeError(w, http.StatusBadRequest, "body unreadable")
		return
	}
	sig := r.Header.Get(whatsapp.SignatureHeader)
	if !whatsapp.VerifySignature(body, sig, s.wa.AppSecret) {
		s.payloads.WithLabelValues(ResultBadSignature).Inc()
		reason := "signature does not match"
		if sig == "" {
			reason = "no " + whatsapp.SignatureHeader + " header"
		}
		s.log.Warn("whatsapp: webhook refused", "reason", reason, "bytes", len(body), "remote", r.RemoteAddr)
		writeError(w, http.StatusUnauthorized, "bad signature")
		return
	}
	batch, err := whatsapp.Parse(body, s.wa.BusinessNumber)
	if err != nil {
		s.payloads.WithLabelValues(ResultMalformed).Inc()
		s.log.Error("whatsapp: signed webhook body unreadable", "error", err, "bytes", len(body))
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	for _, sk := range batch.Skipped {
		s.log.Warn("whatsapp: webhook item skipped", "field", sk.Field, "id", sk.ID, "reason", sk.Reason)
	}
	ctx := r.Context()
	if len(batch.Events) > 0 {
		if err := s.b.Submit(ctx, batch.Events, webhookBy); err != nil {
			s.unavailable(w, "submit events", err)
			return
		}
	}
	if len(batch.Statuses) > 0 {
		if err := s.b.Statuses(ctx, batch.Statuses); err != nil {
			s.unavailable(w, "record statuses", err)
			return
		}
	}
	s.payloads.WithLabelValues(ResultAccepted).Inc()
	s.log.Debug("whatsapp: webhook accepted", "events", len(batch.Events), "statuses", len(batch.Statuses),
		"skipped", len(batch.Skipped))
	writeJSON(w, http.StatusOK, struct {
		OK bool `json:"ok"`
	}{true})
}

// tooLarge answers 413 to a webhook body over whatsapp.MaxBody; size is
// its declared length, or -1 when it was found while reading.
func (s *Server) tooLarge(w http.ResponseWriter, size int64) {
	s.payloads.WithLabelValues(ResultTooLarge).Inc()
	s.log.Warn("whatsapp: webhook body too large", "content_length", size, "max", whatsapp.MaxBody)
	w.Header().Set("Connection", "close")
	writeError(w, http.StatusRequestEntityTooLarge, "body too large")
}

// unavailable answers 503 when the Backend could not take a verified
// webhook; Meta retries it, and redeliveries are deduplicated.
func (s *Server) unavailable(w http.ResponseWriter, what string, err error) {
	s.payloads.WithLabelValues(ResultUnavailable).Inc()
	s.log.Error("whatsapp: webhook not taken, meta will retry", "step", what, "error", err)
	writeError(w, http.StatusServiceUnavailable, "temporarily unavailable")
}
