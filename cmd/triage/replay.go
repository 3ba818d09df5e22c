package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"

	jsonv2 "github.com/go-json-experiment/json"

	"github.com/triage-dev/triage/engine"
	"github.com/triage-dev/triage/rules"
	"github.com/triage-dev/triage/schemas"
)

type replayCmd struct {
	Rules  string `required:"" help:"Rule directory."`
	Events string `required:"" help:"JSON Lines event file, or - for standard input."`
	Until  string `help:"After the last event, fire the SLA deadlines due up to this RFC 3339 time."`
}

func (c *replayCmd) Run(io stdio, code *int) error {
	set, err := loadRules(c.Rules, io)
	if err != nil {
		return err
	}
	in, err := openInput(c.Events, io)
	if err != nil {
		return err
	}
	defer in.Close()
	var until time.Time
	if c.Until != "" {
		if until, err = time.Parse(time.RFC3339, c.Until); err != nil {
			return usagef("--until: %q is not an RFC 3339 time like 2026-11-21T18:00:00Z", c.Until)
		}
	}
	bad, err := replay(set, in, c.Events, io.out, io.err, until)
	if err != nil {
		return err
	}
	if bad > 0 {
		fmt.Fprintf(io.err, "%s: %d event(s) refused\n", c.Events, bad)
		*code = exitProblem
	}
	return nil
}

// loadRules loads a rule directory for a command that needs it whole,
// printing every problem when it does not load.
func loadRules(dir string, io stdio) (*rules.Set, error) {
	set, err := rules.Load(dir, rules.Options{})
	if err != nil {
		if es, ok := rules.AsErrors(err); ok {
			for _, e := range es {
				fmt.Fprintln(io.err, e.Error())
			}
			return nil, fmt.Errorf("rules in %s do not load", dir)
		}
		return nil, usageError{err}
	}
	return set, nil
}

// replay evaluates every event of r and writes decisions to w. A line that
// is not a valid event is reported on errw with its line number and
// skipped, so one bad line does not hide the rest of a day's stream.
//
// Before each event, every SLA deadline due at or before its time fires
// first, in deadline order; after the last, those due up to until (when it
// is not zero).
func replay(set *rules.Set, r io.Reader, name string, w, errw io.Writer, until time.Time) (bad int, err error) {
	eng := engine.New()
	br := bufio.NewReaderSize(r, 1<<16)
	bw := bufio.NewWriterSize(w, 1<<16)
	defer bw.Flush()
	var out []byte
	emit := func(d *schemas.Decision, lineNo int) error {
		if out, err = schemas.AppendDecision(out[:0], d); err != nil {
			return fmt.Errorf("encode decision for %s:%d: %w", name, lineNo, err)
		}
		if _, err := bw.Write(append(out, '\n')); err != nil {
			return fmt.Errorf("write decision: %w", err)
		}
		return nil
	}
	fire := func(at time.Time, lineNo int) error {
		for _, d := range eng.FireDue(set, at) {
			if err := emit(&d, lineNo); err != nil {
				return err
			}
		}
		return nil
	}
	warned := map[string]bool{}
	for lineNo := 1; ; lineNo++ {
		line, rerr := br.ReadBytes('\n')
		if len(trimSpace(line)) > 0 {
			var ev schemas.Event
			field, err := decodeEvent(line, &ev)
			if field != "" {
				// Other tools may add fields; a typo (confidance) would
				// silently read as zero, so say so once per field, and
				// read the event without the strictness.
				ev = schemas.Event{}
				err = decodeEventLenient(line, &ev)
				for _, f := range unknownFields(line) {
					if !warned[f] {
						warned[f] = true
						fmt.Fprintf(errw, "%s:%d: warning: unknown event field %q ignored (reported once)\n", name, lineNo, f)
					}
				}
			}
			if err == nil {
				err = engine.Validate(&ev)
			}
			if err != nil {
				fmt.Fprintf(errw, "%s:%d: %v\n", name, lineNo, invalidLine(err))
				bad++
			} else {
				if err := fire(ev.At, lineNo); err != nil {
					return bad, err
				}
				d, err := eng.Process(set, &ev)
				if err != nil {
					fmt.Fprintf(errw, "%s:%d: %v\n", name, lineNo, err)
					bad++
				} else if err := emit(&d, lineNo); err != nil {
					return bad, err
				}
			}
		}
		if rerr == io.EOF {
			if !until.IsZero() {
				return bad, fire(until, lineNo)
			}
			return bad, nil
		}
		if rerr != nil {
			return bad, fmt.Errorf("read %s: %w", name, rerr)
		}
	}
}

func trimSpace(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t' || b[0] == '\r' || b[0] == '\n') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t' || b[len(b)-1] == '\r' || b[len(b)-1] == '\n') {
		b = b[:len(b)-1]
	}
	return b
}

// eventOptions read events strictly (an unknown member is an error that
// names it) in one pass. Names match case-insensitively, as
// encoding/json's do, so what other tools send keeps working.
var eventOptions = jsonv2.JoinOptions(jsonv2.RejectUnknownMembers(true), jsonv2.MatchCaseInsensitiveNames(true))

// decodeEvent decodes strictly and returns the first unknown member's path
// (quoted, like "contact.nmae"), or "".
func decodeEvent(data []byte, ev *schemas.Event) (string, error) {
	err := jsonv2.Unmarshal(data, ev, eventOptions)
	var se *jsonv2.SemanticError
	if errors.As(err, &se) && errors.Is(se.Err, jsonv2.ErrUnknownName) {
		var path []string
		for tok := range se.JSONPointer.Tokens() {
			path = append(path, tok)
		}
		return strconv.Quote(strings.Join(path, ".")), err
	}
	return "", err
}

// decodeEventLenient reads an event whatever unknown members it has.
func decodeEventLenient(data []byte, ev *schemas.Event) error {
	return jsonv2.Unmarshal(data, ev, jsonv2.MatchCaseInsensitiveNames(true))
}

// invalidLine says what is wrong with a line: JSON that does not parse, or
// an event the engine refuses.
func invalidLine(err error) error {
	if errors.Is(err, engine.ErrInvalidEvent) {
		return err
	}
	return fmt.Errorf("invalid JSON: %w", err)
}

// eventFields are the members an event may have, by JSON name, with the
// members of its nested objects.
var eventFields = map[string]map[string]bool{
	"":        jsonNames(schemas.Event{}),
	"contact": jsonNames(schemas.Contact{}),
	"sla":     jsonNames(schemas.SLAInfo{}),
}

func jsonNames(v any) map[string]bool {
	out := map[string]bool{}
	t := reflect.TypeOf(v)
	for i := 0; i < t.NumField(); i++ {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		if name != "" && name != "-" {
			out[name] = true
		}
	}
	return out
}

// unknownFields lists every member of an event line triage does not know,
// as dotted paths, sorted; names match case-insensitively as decoding
// does. It runs only for lines that already failed the strict decode.
func unknownFields(line []byte) []string {
	var top map[string]any
	if jsonv2.Unmarshal(line, &top) != nil {
		return nil
	}
	var out []string
	check := func(prefix string, m map[string]any, known map[string]bool) {
		for k := range m {
			if !known[strings.ToLower(k)] {
				out = append(out, prefix+k)
			}
		}
	}
	check("", top, eventFields[""])
	for k, v := range top {
		if nested, ok := eventFields[strings.ToLower(k)]; ok && k != "" {
			if m, ok := v.(map[string]any); ok {
				check(k+".", m, nested)
			}
		}
	}
	sort.Strings(out)
	return out
}
