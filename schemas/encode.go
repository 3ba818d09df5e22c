package schemas

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"
)

// AppendDecision appends d as JSON to dst, byte for byte what
// encoding/json prints for it with SetEscapeHTML(false), without the
// trailing newline an Encoder adds.
//
// It exists because the decision record is the hot output of replay (and
// the audit log of serve): encoding/json spends most of its time there on
// reflection over the params maps and on re-validating what a Marshaler
// returns. TestAppendDecisionMatchesEncodingJSON and FuzzAppendDecision
// hold it to encoding/json's output for every field of every type here, so
// a field added to a struct but not here fails the tests.
func AppendDecision(dst []byte, d *Decision) ([]byte, error) {
	var err error
	dst = append(dst, `{"event":`...)
	if dst, err = appendEvent(dst, &d.Event); err != nil {
		return dst, err
	}
	if d.Duplicate {
		dst = append(dst, `,"duplicate":true`...)
	}
	if d.RuleSet != "" {
		dst = append(dst, `,"ruleset":`...)
		dst = appendString(dst, d.RuleSet)
	}
	if d.Matched != nil {
		dst = append(dst, `,"matched":`...)
		dst = appendStrings(dst, d.Matched)
	}
	if d.Actions != nil {
		dst = append(dst, `,"actions":[`...)
		for i := range d.Actions {
			if i > 0 {
				dst = append(dst, ',')
			}
			if dst, err = appendAction(dst, &d.Actions[i]); err != nil {
				return dst, err
			}
		}
		dst = append(dst, ']')
	}
	if d.Errors != nil {
		dst = append(dst, `,"errors":[`...)
		for i, e := range d.Errors {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = append(dst, '{')
			if e.Rule != "" {
				dst = append(dst, `"rule":`...)
				dst = appendString(dst, e.Rule)
				dst = append(dst, ',')
			}
			dst = append(dst, `"error":`...)
			dst = appendString(dst, e.Error)
			dst = append(dst, '}')
		}
		dst = append(dst, ']')
	}
	if len(d.Assignments) > 0 {
		dst = append(dst, `,"assignments":[`...)
		for i, a := range d.Assignments {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = append(dst, `{"conversation":`...)
			dst = appendString(dst, a.Conversation)
			dst = append(dst, `,"agent":`...)
			dst = appendString(dst, a.Agent)
			dst = append(dst, `,"team":`...)
			dst = appendString(dst, a.Team)
			dst = append(dst, '}')
		}
		dst = append(dst, ']')
	}
	if d.Conversation != nil {
		dst = append(dst, `,"conversation":`...)
		if dst, err = appendConversation(dst, d.Conversation); err != nil {
			return dst, err
		}
	}
	return append(dst, '}'), nil
}

func appendEvent(dst []byte, e *Event) ([]byte, error) {
	var err error
	dst = append(dst, `{"id":`...)
	dst = appendString(dst, e.ID)
	dst = append(dst, `,"type":`...)
	dst = appendString(dst, e.Type)
	dst = append(dst, `,"at":`...)
	if dst, err = appendTime(dst, e.At); err != nil {
		return dst, err
	}
	dst = appendOptString(dst, `,"conversation":`, e.Conversation)
	if c := e.Contact; c != nil {
		dst = append(dst, `,"contact":`...)
		dst = appendContact(dst, c)
	}
	dst = appendOptString(dst, `,"text":`, e.Text)
	dst = appendOptString(dst, `,"kind":`, e.Kind)
	dst = appendOptString(dst, `,"payload":`, e.Payload)
	if e.Confidence != 0 {
		dst = append(dst, `,"confidence":`...)
		if dst, err = appendFloat(dst, e.Confidence); err != nil {
			return dst, err
		}
	}
	dst = appendOptString(dst, `,"topic":`, e.Topic)
	if e.Resolved {
		dst = append(dst, `,"resolved":true`...)
	}
	dst = appendOptString(dst, `,"agent":`, e.Agent)
	dst = appendOptString(dst, `,"status":`, e.Status)
	if s := e.SLA; s != nil {
		dst = append(dst, `,"sla":{"policy":`...)
		dst = appendString(dst, s.Policy)
		dst = append(dst, `,"metric":`...)
		dst = appendString(dst, s.Metric)
		dst = append(dst, `,"due_at":`...)
		if dst, err = appendTime(dst, s.DueAt); err != nil {
			return dst, err
		}
		dst = append(dst, '}')
	}
	return append(dst, '}'), nil
}

func appendContact(dst []byte, c *Contact) []byte {
	dst = append(dst, '{')
	n := len(dst)
	field := func(key, v string) {
		if v == "" {
			return
		}
		if len(dst) > n {
			dst = append(dst, ',')
		}
		dst = append(dst, key...)
		dst = appendString(dst, v)
	}
	field(`"id":`, c.ID)
	field(`"name":`, c.Name)
	field(`"language":`, c.Language)
	field(`"phone":`, c.Phone)
	if c.OptedOut {
		if len(dst) > n {
			dst = append(dst, ',')
		}
		dst = append(dst, `"opted_out":true`...)
	}
	return append(dst, '}')
}

func appendAction(dst []byte, a *ActionRecord) ([]byte, error) {
	var err error
	dst = append(dst, `{"rule":`...)
	dst = appendString(dst, a.Rule)
	dst = append(dst, `,"type":`...)
	dst = appendString(dst, a.Type)
	dst = append(dst, `,"params":`...)
	if dst, err = appendMap(dst, a.Params); err != nil {
		return dst, err
	}
	dst = append(dst, `,"outcome":`...)
	dst = appendString(dst, a.Outcome)
	dst = appendOptString(dst, `,"reason":`, a.Reason)
	dst = appendOptString(dst, `,"error":`, a.Error)
	if len(a.Result) > 0 {
		dst = append(dst, `,"result":`...)
		if dst, err = appendMap(dst, a.Result); err != nil {
			return dst, err
		}
	}
	return append(dst, '}'), nil
}

func appendConversation(dst []byte, c *Conversation) ([]byte, error) {
	var err error
	dst = append(dst, `{"id":`...)
	dst = appendString(dst, c.ID)
	dst = append(dst, `,"status":`...)
	dst = appendString(dst, c.Status)
	dst = append(dst, `,"handler":`...)
	dst = appendString(dst, c.Handler)
	dst = append(dst, `,"assignee":`...)
	dst = appendString(dst, c.Assignee)
	dst = append(dst, `,"team":`...)
	dst = appendString(dst, c.Team)
	dst = append(dst, `,"tags":`...)
	dst = appendStrings(dst, c.Tags)
	dst = append(dst, `,"priority":`...)
	dst = appendString(dst, c.Priority)
	dst = append(dst, `,"bot_turns":`...)
	dst = strconv.AppendInt(dst, int64(c.BotTurns), 10)
	dst = append(dst, `,"escalated":`...)
	dst = strconv.AppendBool(dst, c.Escalated)
	dst = append(dst, `,"escalation_reason":`...)
	dst = appendString(dst, c.EscalationReason)
	for _, t := range [...]struct {
		key string
		at  time.Time
	}{
		{`,"opened_at":`, c.OpenedAt},
		{`,"first_response_at":`, c.FirstResponseAt},
		{`,"last_customer_message_at":`, c.LastCustomerMessageAt},
		{`,"last_agent_message_at":`, c.LastAgentMessageAt},
	} {
		if !t.at.IsZero() {
			dst = append(dst, t.key...)
			if dst, err = appendTime(dst, t.at); err != nil {
				return dst, err
			}
		}
	}
	dst = append(dst, `,"window_open":`...)
	dst = strconv.AppendBool(dst, c.WindowOpen)
	dst = append(dst, `,"messages":`...)
	dst = strconv.AppendInt(dst, int64(c.Messages), 10)
	dst = appendOptString(dst, `,"contact":`, c.Contact)
	if c.SLA != (SLAStatus{}) {
		dst = append(dst, `,"sla":{`...)
		n := len(dst)
		if c.SLA.Policy != "" {
			dst = append(dst, `"policy":`...)
			dst = appendString(dst, c.SLA.Policy)
		}
		for _, m := range [...]struct {
			key string
			m   SLAMetric
		}{
			{`"first_response":`, c.SLA.FirstResponse},
			{`"next_response":`, c.SLA.NextResponse},
			{`"resolution":`, c.SLA.Resolution},
		} {
			if m.m == (SLAMetric{}) {
				continue
			}
			if len(dst) > n {
				dst = append(dst, ',')
			}
			dst = append(dst, m.key...)
			if dst, err = appendMetric(dst, m.m); err != nil {
				return dst, err
			}
		}
		dst = append(dst, '}')
	}
	return append(dst, '}'), nil
}

func appendMetric(dst []byte, m SLAMetric) ([]byte, error) {
	var err error
	dst = append(dst, '{')
	n := len(dst)
	if m.State != "" {
		dst = append(dst, `"state":`...)
		dst = appendString(dst, m.State)
	}
	if !m.DueAt.IsZero() {
		if len(dst) > n {
			dst = append(dst, ',')
		}
		dst = append(dst, `"due_at":`...)
		if dst, err = appendTime(dst, m.DueAt); err != nil {
			return dst, err
		}
	}
	if m.Breached {
		if len(dst) > n {
			dst = append(dst, ',')
		}
		dst = append(dst, `"breached":true`...)
	}
	return append(dst, '}'), nil
}

func appendOptString(dst []byte, key, v string) []byte {
	if v == "" {
		return dst
	}
	return appendString(append(dst, key...), v)
}

func appendStrings(dst []byte, list []string) []byte {
	if list == nil {
		return append(dst, "null"...)
	}
	dst = append(dst, '[')
	for i, s := range list {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendString(dst, s)
	}
	return append(dst, ']')
}

// appendMap prints keys sorted, as encoding/json does.
func appendMap(dst []byte, m map[string]any) ([]byte, error) {
	if m == nil {
		return append(dst, "null"...), nil
	}
	var buf [16]string
	keys := buf[:0]
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	dst = append(dst, '{')
	var err error
	for i, k := range keys {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendString(dst, k)
		dst = append(dst, ':')
		if dst, err = appendAny(dst, m[k]); err != nil {
			return dst, err
		}
	}
	return append(dst, '}'), nil
}

// appendAny prints the values rendered params hold; anything else goes
// through encoding/json, so the output never depends on this list.
func appendAny(dst []byte, v any) ([]byte, error) {
	switch v := v.(type) {
	case nil:
		return append(dst, "null"...), nil
	case string:
		return appendString(dst, v), nil
	case bool:
		return strconv.AppendBool(dst, v), nil
	case int:
		return strconv.AppendInt(dst, int64(v), 10), nil
	case int64:
		return strconv.AppendInt(dst, v, 10), nil
	case float64:
		return appendFloat(dst, v)
	case []string:
		return appendStrings(dst, v), nil
	case map[string]any:
		return appendMap(dst, v)
	case []any:
		if v == nil {
			return append(dst, "null"...), nil
		}
		dst = append(dst, '[')
		var err error
		for i, e := range v {
			if i > 0 {
				dst = append(dst, ',')
			}
			if dst, err = appendAny(dst, e); err != nil {
				return dst, err
			}
		}
		return append(dst, ']'), nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return dst, err
	}
	return append(dst, b...), nil
}

// appendFloat follows encoding/json: ES6 number formatting, and an error
// for NaN and infinities, which JSON cannot hold.
func appendFloat(dst []byte, f float64) ([]byte, error) {
	if math.IsInf(f, 0) || math.IsNaN(f) {
		return dst, fmt.Errorf("json: unsupported value: %s", strconv.FormatFloat(f, 'g', -1, 64))
	}
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	dst = strconv.AppendFloat(dst, f, format, -1, 64)
	if format == 'e' {
		// e-09 becomes e-9, as encoding/json prints it.
		n := len(dst)
		if n >= 4 && dst[n-4] == 'e' && dst[n-3] == '-' && dst[n-2] == '0' {
			dst[n-2] = dst[n-1]
			dst = dst[:n-1]
		}
	}
	return dst, nil
}

// appendTime is time.Time's MarshalJSON.
func appendTime(dst []byte, t time.Time) ([]byte, error) {
	if y := t.Year(); y < 0 || y >= 10000 {
		b, err := t.MarshalJSON() // for its error
		return append(dst, b...), err
	}
	dst = append(dst, '"')
	dst = t.AppendFormat(dst, time.RFC3339Nano)
	return append(dst, '"'), nil
}

const hexDigits = "0123456789abcdef"

// appendString is encoding/json's string encoding without HTML escaping:
// quotes, backslashes and control characters escaped, invalid UTF-8 as
// U+FFFD, and U+2028 and U+2029 escaped for JavaScript's sake.
func appendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		if b := s[i]; b < utf8.RuneSelf {
			if b >= 0x20 && b != '"' && b != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch b {
			case '\\', '"':
				dst = append(dst, '\\', b)
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[b>>4], hexDigits[b&0xF])
			}
			i++
			start = i
			continue
		}
		c, size := utf8.DecodeRuneInString(s[i:])
		if c == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if c == '\u2028' || c == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[c&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
