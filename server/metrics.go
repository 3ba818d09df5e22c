package server

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/triage-dev/triage/reload"
	"github.com/triage-dev/triage/schemas"
)

// metrics are the daemon's Prometheus metrics, registered on the
// registerer the command passes in (no globals, so tests stay hermetic).
type metrics struct {
	events         *prometheus.CounterVec
	duplicates     prometheus.Counter
	matches        *prometheus.CounterVec
	ruleErrors     *prometheus.CounterVec
	actions        *prometheus.CounterVec
	escalations    *prometheus.CounterVec
	latency        prometheus.Histogram
	deliveries     *prometheus.CounterVec
	outboxPending  prometheus.Gauge
	outboxDead     prometheus.Gauge
	unitEvents     prometheus.Histogram
	unitDuration   prometheus.Histogram
	unitFailures   prometheus.Counter
	whatsappFailed *prometheus.CounterVec
	refused        prometheus.Counter
	reloadOK       prometheus.Gauge
	reloadTime     prometheus.Gauge
	rulesInfo      *prometheus.GaugeVec
}

func newMetrics(reg prometheus.Registerer, s *Server) (*metrics, error) {
	m := &metrics{
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "triage_events_total", Help: "Events evaluated, by type (SLA deadlines included).",
		}, []string{"type"}),
		duplicates: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "triage_duplicate_events_total", Help: "Events ignored because their id was seen before.",
		}),
		matches: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "triage_rule_matches_total", Help: "Rules that matched, by rule.",
		}, []string{"rule"}),
		ruleErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "triage_rule_errors_total", Help: "Run-time expression errors, by rule (event errors have rule \"\").",
		}, []string{"rule"}),
		actions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "triage_actions_total", Help: "Actions fired, by type and outcome.",
		}, []string{"type", "outcome"}),
		escalations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "triage_escalations_total", Help: "Escalations to humans, by reason.",
		}, []string{"reason"}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "triage_decision_duration_seconds", Help: "Time to evaluate one event.",
			Buckets: prometheus.ExponentialBuckets(1e-6, 4, 10),
		}),
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "triage_outbound_deliveries_total", Help: "Outbound delivery attempts, by connector and result (delivered, retry, dead).",
		}, []string{"connector", "result"}),
		outboxPending: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "triage_outbound_pending", Help: "Outbound items waiting for delivery.",
		}),
		outboxDead: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "triage_outbound_dead", Help: "Outbound items given up after their attempts (GET /v1/outbound?result=dead lists them).",
		}),
		unitEvents: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "triage_unit_events", Help: "Events evaluated per committed unit of work (batched under load).",
			Buckets: []float64{1, 2, 4, 8, 16, 32, 64, 128},
		}),
		unitDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "triage_unit_duration_seconds", Help: "Time from beginning a unit of work to its commit: locking, loading, evaluating, storing.",
			Buckets: prometheus.ExponentialBuckets(1e-5, 4, 10),
		}),
		unitFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "triage_unit_failures_total", Help: "Units of work the store refused or failed to commit (their events were answered with an error, or retried one by one).",
		}),
		whatsappFailed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "triage_whatsapp_failed_statuses_total", Help: "Messages WhatsApp reported failed after accepting them, by error code.",
		}, []string{"code"}),
		refused: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "triage_events_refused_total", Help: "Event batches refused because an evaluation queue was full or too much outbound work waited.",
		}),
		reloadOK: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "triage_rules_last_reload_successful", Help: "Whether the latest rule reload succeeded (1) or was rejected (0).",
		}),
		reloadTime: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "triage_rules_last_reload_success_timestamp_seconds", Help: "When the running rule set was loaded.",
		}),
		rulesInfo: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "triage_rules_info", Help: "The running rule set's version, as a label; always 1.",
		}, []string{"version"}),
	}
	queues := &queueCollector{s: s, desc: prometheus.NewDesc("triage_team_queue_waiting",
		"Conversations waiting in a team's queue for an eligible agent.", []string{"team"}, nil)}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.events, m.duplicates, m.matches, m.ruleErrors, m.actions, m.escalations,
			m.latency, m.deliveries, m.outboxPending, m.outboxDead, m.unitEvents, m.unitDuration, m.unitFailures, m.whatsappFailed, m.refused, m.reloadOK, m.reloadTime, m.rulesInfo, queues} {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
	}
	m.reloaded(s.opts.Holder.Status())
	return m, nil
}

func (m *metrics) reloaded(st reload.Status) {
	if st.OK {
		m.reloadOK.Set(1)
		m.reloadTime.Set(float64(st.LoadedAt.UnixNano()) / 1e9)
		m.rulesInfo.Reset()
		m.rulesInfo.WithLabelValues(st.Version).Set(1)
	} else {
		m.reloadOK.Set(0)
	}
}

func (m *metrics) observe(d *schemas.Decision) {
	m.events.WithLabelValues(d.Event.Type).Inc()
	if d.Duplicate {
		m.duplicates.Inc()
		return
	}
	for _, r := range d.Matched {
		m.matches.WithLabelValues(r).Inc()
	}
	for _, e := range d.Errors {
		m.ruleErrors.WithLabelValues(e.Rule).Inc()
	}
	for _, a := range d.Actions {
		m.actions.WithLabelValues(a.Type, a.Outcome).Inc()
		if a.Type == "escalate" && a.Outcome == schemas.OutcomeApplied {
			reason, _ := a.Params["reason"].(string)
			m.escalations.WithLabelValues(reason).Inc()
		}
	}
}

func (m *metrics) decision(d time.Duration) { m.latency.Observe(d.Seconds()) }

func (m *metrics) unit(events int, d time.Duration) {
	m.unitEvents.Observe(float64(events))
	m.unitDuration.Observe(d.Seconds())
}

func (m *metrics) unitFailed() { m.unitFailures.Inc() }

func (m *metrics) delivered(connector, result string) {
	m.deliveries.WithLabelValues(connector, result).Inc()
}

// queueCollector reports each team's queue at scrape time, so the figure
// is never stale and costs nothing between scrapes.
type queueCollector struct {
	s    *Server
	desc *prometheus.Desc
}

func (q *queueCollector) Describe(ch chan<- *prometheus.Desc) { ch <- q.desc }

func (q *queueCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	lengths, err := q.s.store.QueueLengths(ctx)
	if err != nil {
		q.s.log.Warn("metrics: reading team queues failed", "error", err)
		return
	}
	for _, t := range q.s.opts.Holder.Set().Teams() {
		ch <- prometheus.MustNewConstMetric(q.desc, prometheus.GaugeValue, float64(lengths[t.Name]), t.Name)
	}
}
