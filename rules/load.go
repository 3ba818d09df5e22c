// Package rules loads a rule directory into a compiled, immutable Set:
// YAML is walked node by node so every problem carries its file, line and
// column, every problem is collected rather than the first, and every
// expression and template is compiled by expr once, at load.
package rules

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/triage-dev/triage/actions"
)

// File is one rule file's content, for loading from memory.
type File struct {
	Path string // slash-separated, relative to the rule directory
	Data []byte
}

// Options tune loading.
type Options struct {
	// Registry holds the action types rules may use; nil means
	// actions.Default.
	Registry *actions.Registry
	// Dir is prefixed to file paths in positions; Load sets it.
	Dir string
}

// IsTestFile reports whether a path names a rule test rather than rules.
func IsTestFile(p string) bool {
	base := path.Base(filepath.ToSlash(p))
	return strings.HasSuffix(base, "_test.yaml") || strings.HasSuffix(base, "_test.yml")
}

func isYAML(p string) bool {
	return strings.HasSuffix(p, ".yaml") || strings.HasSuffix(p, ".yml")
}

// ReadDir reads a rule directory: the rule files and the test files, each
// in lexical order of their slash-separated path relative to dir. Hidden
// files and directories (a leading dot) are skipped, which also keeps a
// Kubernetes ConfigMap's ..data and timestamped directories from being
// read twice; symbolic links to files are followed.
func ReadDir(dir string) (ruleFiles, testFiles []File, err error) {
	info, err := os.Stat(dir)
	if err != nil {
		return nil, nil, fmt.Errorf("read rule directory: %w", err)
	}
	if !info.IsDir() {
		return nil, nil, fmt.Errorf("read rule directory: %s is not a directory", dir)
	}
	// A rule directory given as a symbolic link (a release directory, a
	// mount) is walked where it points; WalkDir does not follow its root.
	root, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return nil, nil, fmt.Errorf("read rule directory: %w", err)
	}
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if p != root && strings.HasPrefix(name, ".") {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if d.IsDir() || !isYAML(name) {
			return nil
		}
		if d.Type()&fs.ModeSymlink != 0 {
			st, err := os.Stat(p)
			if err != nil {
				return fmt.Errorf("follow %s: %w", p, err)
			}
			if !st.Mode().IsRegular() {
				return nil
			}
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		f := File{Path: filepath.ToSlash(rel), Data: data}
		if IsTestFile(name) {
			testFiles = append(testFiles, f)
		} else {
			ruleFiles = append(ruleFiles, f)
		}
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("read rule directory: %w", err)
	}
	sort.Slice(ruleFiles, func(i, j int) bool { return ruleFiles[i].Path < ruleFiles[j].Path })
	sort.Slice(testFiles, func(i, j int) bool { return testFiles[i].Path < testFiles[j].Path })
	return ruleFiles, testFiles, nil
}

// Load reads and compiles the rule directory dir. On failure the error is
// an Errors listing every problem (warnings included) at its position, or
// a plain error when the directory cannot be read.
func Load(dir string, opts Options) (*Set, error) {
	files, _, err := ReadDir(dir)
	if err != nil {
		return nil, err
	}
	opts.Dir = dir
	return Compile(files, opts)
}

// Version computes a rule set's version from its files, in load order.
func Version(files []File) string {
	h := sha256.New()
	for _, f := range files {
		h.Write([]byte(f.Path))
		h.Write(f.Data)
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil))[:12]
}

// DisplayPath is how positions name a file of the rule directory dir.
func DisplayPath(dir, rel string) string {
	if dir == "" {
		return rel
	}
	return filepath.ToSlash(filepath.Join(dir, filepath.FromSlash(rel)))
}

// Compile builds a Set from rule files already read, in load order.
func Compile(files []File, opts Options) (*Set, error) {
	if opts.Registry == nil {
		opts.Registry = actions.Default
	}
	c := &collector{}
	order := map[string]int{}
	var raws []*rawFile
	for i, f := range files {
		src := newSource(DisplayPath(opts.Dir, f.Path), f.Path, f.Data)
		order[src.path] = i
		p := &walker{c: c, src: src}
		if rf := p.file(f.Data); rf != nil {
			raws = append(raws, rf)
		}
	}
	if len(files) == 0 {
		c.errorf(Pos{File: opts.Dir}, "no rule files (*.yaml, *.yml) found")
	}
	set := newCompiler(c, opts.Registry).build(raws)
	set.version = Version(files)
	for _, f := range files {
		set.files = append(set.files, f.Path)
	}
	all := c.errs.sorted(order)
	if all.Fatal() {
		return nil, all
	}
	set.warnings = all
	return set, nil
}

// AsErrors extracts the positioned problems from a Load error.
func AsErrors(err error) (Errors, bool) {
	var es Errors
	if errors.As(err, &es) {
		return es, true
	}
	return nil, false
}
