package schemas_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"gopkg.in/yaml.v3"

	"github.com/triage-dev/triage/schemas"
)

const (
	schemaID   = "https://triage.dev/schemas/rules.schema.json"
	schemaFile = "rules.schema.json" // the embedded file, relative to this package
	examples   = "../examples/rules"
)

// compiled compiles the embedded schema once; Compile meta-validates it
// against the draft 2020-12 meta-schema. Formats (holidays' "date") are
// asserted, as a careful validator would.
var compiled = sync.OnceValues(func() (*jsonschema.Schema, error) {
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(schemas.RulesSchema))
	if err != nil {
		return nil, fmt.Errorf("parse embedded schema: %w", err)
	}
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	if err := c.AddResource(schemaID, doc); err != nil {
		return nil, fmt.Errorf("add embedded schema: %w", err)
	}
	sch, err := c.Compile(schemaID)
	if err != nil {
		return nil, fmt.Errorf("compile embedded schema: %w", err)
	}
	return sch, nil
})

func rulesSchema(t *testing.T) *jsonschema.Schema {
	t.Helper()
	sch, err := compiled()
	if err != nil {
		t.Fatal(err)
	}
	return sch
}

func TestRulesSchemaCompiles(t *testing.T) {
	rulesSchema(t)

	// The compiler must really meta-validate, or the test above proves little.
	bad, err := jsonschema.UnmarshalJSON(strings.NewReader(
		`{"$schema": "https://json-schema.org/draft/2020-12/schema", "minItems": "one"}`))
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource("mem://bad.json", bad); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Compile("mem://bad.json"); err == nil {
		t.Fatal("a schema with minItems \"one\" compiled: meta-validation is off")
	}
}

// TestRulesSchemaShape checks what editors rely on and a validator cannot:
// identity, hover text on every property, and no silently accepted keys.
func TestRulesSchemaShape(t *testing.T) {
	var doc map[string]any
	if err := json.Unmarshal(schemas.RulesSchema, &doc); err != nil {
		t.Fatal(err)
	}
	onDisk, err := os.ReadFile(schemaFile)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(onDisk, schemas.RulesSchema) {
		t.Error("embedded schema differs from " + schemaFile)
	}
	for key, want := range map[string]string{
		"$schema": "https://json-schema.org/draft/2020-12/schema",
		"$id":     schemaID,
	} {
		if doc[key] != want {
			t.Errorf("%s = %v, want %q", key, doc[key], want)
		}
	}
	if s, _ := doc["title"].(string); s == "" {
		t.Error("schema has no title")
	}
	defs, _ := doc["$defs"].(map[string]any)
	for name, def := range defs {
		if d, _ := def.(map[string]any)["description"].(string); d == "" {
			t.Errorf("$defs/%s has no description", name)
		}
	}
	var walk func(ptr string, v any)
	walk = func(ptr string, v any) {
		switch v := v.(type) {
		case map[string]any:
			if props, ok := v["properties"].(map[string]any); ok {
				if v["additionalProperties"] != false {
					t.Errorf("%s: has properties but not additionalProperties: false", ptr)
				}
				for name, p := range props {
					pm, _ := p.(map[string]any)
					if d, _ := pm["description"].(string); d == "" {
						t.Errorf("%s/properties/%s has no description", ptr, name)
					}
				}
			}
			for k, sub := range v {
				// Subschemas of if/then/else/not only constrain what
				// is declared elsewhere ("then: {properties: {agent:
				// false}}"); they declare no property of their own.
				if k == "if" || k == "then" || k == "else" || k == "not" {
					continue
				}
				walk(ptr+"/"+k, sub)
			}
		case []any:
			for i, sub := range v {
				walk(fmt.Sprintf("%s/%d", ptr, i), sub)
			}
		}
	}
	walk("#", doc)
}

// TestExampleRulesValidate checks every rule file of the shipped examples
// (rule tests, *_test.yaml, excepted) against the schema.
func TestExampleRulesValidate(t *testing.T) {
	sch := rulesSchema(t)
	files := ruleFiles(t, examples)
	if len(files) == 0 {
		t.Fatalf("no rule files (*.yaml, *.yml, other than *_test.yaml) found under %s: "+
			"the example rule set must exist, and every file in it must validate against %s", examples, schemaFile)
	}
	for _, path := range files {
		rel, _ := filepath.Rel(examples, path)
		t.Run(filepath.ToSlash(rel), func(t *testing.T) {
			if err := validateFile(sch, path); err != nil {
				t.Errorf("%s: %#v", path, err)
			}
			checkModeline(t, path)
		})
	}
}

// TestSchemaTestdataValid checks that every testdata/schema/valid/*.yaml
// validates.
func TestSchemaTestdataValid(t *testing.T) {
	sch := rulesSchema(t)
	files := glob(t, "testdata/schema/valid/*.yaml")
	for _, path := range files {
		t.Run(filepath.Base(path), func(t *testing.T) {
			if err := validateFile(sch, path); err != nil {
				t.Errorf("%s: want valid, got %#v", path, err)
			}
			checkModeline(t, path)
		})
	}
}

// TestSchemaTestdataInvalid checks that every testdata/schema/invalid/*.yaml
// fails, with an error mentioning what its first line, "# want: TEXT", says.
func TestSchemaTestdataInvalid(t *testing.T) {
	sch := rulesSchema(t)
	files := glob(t, "testdata/schema/invalid/*.yaml")
	for _, path := range files {
		t.Run(filepath.Base(path), func(t *testing.T) {
			want := wantLine(t, path)
			err := validateFile(sch, path)
			if err == nil {
				t.Fatalf("%s: validated, want an error mentioning %q", path, want)
			}
			var verr *jsonschema.ValidationError
			if !errors.As(err, &verr) {
				t.Fatalf("%s: want a validation error mentioning %q, got %v", path, want, err)
			}
			// The verbose form adds each failing keyword's location.
			got := verr.Error() + "\n" + verr.GoString()
			if !strings.Contains(got, want) {
				t.Errorf("%s: error does not mention %q:\n%s", path, want, got)
			}
		})
	}
}

// ruleFiles lists the rule files under root, in lexical order, walking
// subdirectories; a missing root has none.
func ruleFiles(t *testing.T, root string) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if path == root && errors.Is(err, fs.ErrNotExist) {
				return fs.SkipDir
			}
			return err
		}
		name := d.Name()
		if d.IsDir() || strings.HasSuffix(name, "_test.yaml") || strings.HasSuffix(name, "_test.yml") {
			return nil
		}
		if ext := filepath.Ext(name); ext == ".yaml" || ext == ".yml" {
			files = append(files, path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(files)
	return files
}

func glob(t *testing.T, pattern string) []string {
	t.Helper()
	files, err := filepath.Glob(pattern)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatalf("no files match %s", pattern)
	}
	return files
}

// wantLine returns TEXT from the file's first line, "# want: TEXT".
func wantLine(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Scan()
	want, ok := strings.CutPrefix(sc.Text(), "# want:")
	want = strings.TrimSpace(want)
	if !ok || want == "" {
		t.Fatalf("%s: first line must be \"# want: <part of the validation error>\", got %q", path, sc.Text())
	}
	return want
}

var modeline = regexp.MustCompile(`(?m)^#\s*yaml-language-server:\s*\$schema=(\S+)`)

// checkModeline checks that a file's yaml-language-server modeline, if it
// has one, points at this schema: a wrong path fails silently in editors.
func checkModeline(t *testing.T, path string) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	m := modeline.FindSubmatch(data)
	if m == nil {
		return
	}
	ref := string(m[1])
	if strings.Contains(ref, "://") {
		if ref != schemaID {
			t.Errorf("%s: modeline $schema=%s, want a relative path to schemas/%s or %s", path, ref, schemaFile, schemaID)
		}
		return
	}
	file := filepath.FromSlash(ref)
	if !filepath.IsAbs(file) {
		file = filepath.Join(filepath.Dir(path), file)
	}
	target, err := os.Stat(file)
	if err != nil {
		t.Errorf("%s: modeline $schema=%s: %v", path, ref, err)
		return
	}
	self, err := os.Stat(schemaFile)
	if err != nil {
		t.Fatal(err)
	}
	if !os.SameFile(target, self) {
		t.Errorf("%s: modeline $schema=%s does not point at schemas/%s", path, ref, schemaFile)
	}
}

// validateFile validates every YAML document in the file.
func validateFile(sch *jsonschema.Schema, path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	docs, err := decodeYAML(data)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	for _, doc := range docs {
		if err := sch.Validate(doc); err != nil {
			return err
		}
	}
	return nil
}

// decodeYAML decodes each document into the values of encoding/json: maps
// with string keys, slices, strings, float64 or integers (the validator
// takes Go's integer types as JSON numbers), bools and nil. An empty file
// is one null document.
func decodeYAML(data []byte) ([]any, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var docs []any
	for {
		var n yaml.Node
		err := dec.Decode(&n)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		untimestamp(&n)
		var v any
		if err := n.Decode(&v); err != nil {
			return nil, err
		}
		j, err := toJSON(v)
		if err != nil {
			return nil, err
		}
		docs = append(docs, j)
	}
	if len(docs) == 0 {
		docs = append(docs, nil)
	}
	return docs, nil
}

// untimestamp retags plain timestamps (holidays: [2026-12-25]) as strings:
// yaml.v3 would decode them into time.Time, while editors, which read YAML
// 1.2, and the rule loader see the text.
func untimestamp(n *yaml.Node) {
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!timestamp" && n.Style&yaml.TaggedStyle == 0 {
		n.Tag = "!!str"
	}
	for _, c := range n.Content {
		untimestamp(c)
	}
}

func toJSON(v any) (any, error) {
	switch v := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, e := range v {
			j, err := toJSON(e)
			if err != nil {
				return nil, err
			}
			out[k] = j
		}
		return out, nil
	case map[any]any:
		// A key that is not a string in YAML (1:, true:) is its text in JSON.
		out := make(map[string]any, len(v))
		for k, e := range v {
			j, err := toJSON(e)
			if err != nil {
				return nil, err
			}
			out[fmt.Sprint(k)] = j
		}
		return out, nil
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			j, err := toJSON(e)
			if err != nil {
				return nil, err
			}
			out[i] = j
		}
		return out, nil
	case float64:
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return nil, fmt.Errorf("%v is not a JSON number", v)
		}
		return v, nil
	case nil, string, bool, int, int64, uint64:
		return v, nil
	default:
		return nil, fmt.Errorf("YAML value %v of type %T has no JSON equivalent", v, v)
	}
}
