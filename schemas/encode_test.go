package schemas_test

import (
	"bytes"
	"encoding/json"
	"math"
	"math/rand"
	"reflect"
	"testing"
	"time"

	"github.com/triage-dev/triage/schemas"
)

// filler sets every exported field of a value at random, by reflection, so
// a field added to the contract types is exercised without touching this
// test. Strings and numbers come from pools of awkward cases.
type filler struct{ r *rand.Rand }

var awkward = []string{
	"", "plain", `quote " and \ backslash`, "tab\tnew\nline\r", "\b\f\x00\x1f\x7f",
	"<html> & 'apostrophes'", "é ß Σ 日本語 🙂", "\u2028\u2029", "bad \xff\xfe utf-8", "{{ not a template }}",
}

var floats = []float64{0, 0.6, 0.92, 1, -3.5, 1e-7, 1.5e-9, 1e21, 123456789.125, math.SmallestNonzeroFloat64, 1e300}

func (f filler) fill(v reflect.Value, depth int) {
	switch v.Kind() {
	case reflect.String:
		v.SetString(awkward[f.r.Intn(len(awkward))])
	case reflect.Bool:
		v.SetBool(f.r.Intn(2) == 0)
	case reflect.Int:
		v.SetInt(int64(f.r.Intn(2000) - 1000))
	case reflect.Float64:
		v.SetFloat(floats[f.r.Intn(len(floats))])
	case reflect.Pointer:
		if f.r.Intn(3) == 0 {
			return // nil
		}
		v.Set(reflect.New(v.Type().Elem()))
		f.fill(v.Elem(), depth+1)
	case reflect.Slice:
		switch f.r.Intn(4) {
		case 0:
			return // nil
		case 1:
			v.Set(reflect.MakeSlice(v.Type(), 0, 0))
		default:
			n := 1 + f.r.Intn(3)
			v.Set(reflect.MakeSlice(v.Type(), n, n))
			for i := 0; i < n; i++ {
				f.fill(v.Index(i), depth+1)
			}
		}
	case reflect.Map:
		if f.r.Intn(4) == 0 {
			return
		}
		m := map[string]any{}
		for i := f.r.Intn(5); i > 0; i-- {
			m[awkward[f.r.Intn(len(awkward))]+string(rune('a'+i))] = f.any(depth + 1)
		}
		v.Set(reflect.ValueOf(m))
	case reflect.Struct:
		if v.Type() == reflect.TypeOf(time.Time{}) {
			v.Set(reflect.ValueOf(f.time()))
			return
		}
		for i := 0; i < v.NumField(); i++ {
			if v.Type().Field(i).IsExported() {
				f.fill(v.Field(i), depth+1)
			}
		}
	}
}

func (f filler) time() time.Time {
	switch f.r.Intn(4) {
	case 0:
		return time.Time{}
	case 1:
		return time.Date(2026, 11, 21, 10, 2, 0, 0, time.UTC)
	case 2:
		return time.Date(2026, 3, 29, 1, 59, 59, 123456789, time.FixedZone("IST", 5*3600+1800))
	}
	return time.Unix(f.r.Int63n(4e9), f.r.Int63n(1e9))
}

func (f filler) any(depth int) any {
	n := 8
	if depth > 3 {
		n = 5 // no deeper containers
	}
	switch f.r.Intn(n) {
	case 0:
		return nil
	case 1:
		return awkward[f.r.Intn(len(awkward))]
	case 2:
		return f.r.Intn(100)
	case 3:
		return floats[f.r.Intn(len(floats))]
	case 4:
		return f.r.Intn(2) == 0
	case 5:
		return []any{f.any(depth + 1), f.any(depth + 1)}
	case 6:
		return map[string]any{"k": f.any(depth + 1), "a": f.any(depth + 1)}
	}
	return []string{"x", awkward[f.r.Intn(len(awkward))]}
}

func viaEncodingJSON(d *schemas.Decision) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(d); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

func checkSame(t *testing.T, d *schemas.Decision) {
	t.Helper()
	want, wantErr := viaEncodingJSON(d)
	got, gotErr := schemas.AppendDecision(nil, d)
	if (wantErr != nil) != (gotErr != nil) {
		t.Fatalf("errors differ: encoding/json %v, AppendDecision %v", wantErr, gotErr)
	}
	if wantErr == nil && !bytes.Equal(got, want) {
		t.Fatalf("output differs\nencoding/json:  %s\nAppendDecision: %s", want, got)
	}
}

func TestAppendDecisionMatchesEncodingJSON(t *testing.T) {
	r := rand.New(rand.NewSource(1))
	for i := 0; i < 20000; i++ {
		var d schemas.Decision
		filler{r}.fill(reflect.ValueOf(&d).Elem(), 0)
		d.Outbound = nil
		checkSame(t, &d)
	}
}

func TestAppendDecisionErrors(t *testing.T) {
	for _, d := range []schemas.Decision{
		{Event: schemas.Event{Confidence: math.NaN()}},
		{Actions: []schemas.ActionRecord{{Params: map[string]any{"x": math.Inf(1)}}}},
		{Event: schemas.Event{At: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)}},
	} {
		if _, err := schemas.AppendDecision(nil, &d); err == nil {
			t.Errorf("no error for %+v", d)
		}
		checkSame(t, &d)
	}
}

func FuzzAppendDecision(f *testing.F) {
	for i := int64(0); i < 8; i++ {
		f.Add(i)
	}
	f.Fuzz(func(t *testing.T, seed int64) {
		var d schemas.Decision
		filler{rand.New(rand.NewSource(seed))}.fill(reflect.ValueOf(&d).Elem(), 0)
		d.Outbound = nil
		checkSame(t, &d)
	})
}
