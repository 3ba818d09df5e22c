package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var updateGolden = flag.Bool("update", false, "rewrite the golden files of testdata/check")

// TestCheckGolden runs `triage check` on every rule directory under
// testdata/check and compares its exit code and standard output with
// testdata/check/<case>.golden. A file named args in the directory holds
// extra flags, one per line. Paths are relative, as a user would type
// them, so the output is the same on every machine.
//
//	go test ./cmd/triage -run TestCheckGolden -update
func TestCheckGolden(t *testing.T) {
	entries, err := os.ReadDir(filepath.Join("testdata", "check"))
	if err != nil {
		t.Fatal(err)
	}
	cases := 0
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		cases++
		name := e.Name()
		t.Run(name, func(t *testing.T) {
			dir := "testdata/check/" + name
			args := []string{"check"}
			if b, err := os.ReadFile(filepath.Join(dir, "args")); err == nil {
				args = append(args, strings.Fields(string(b))...)
			} else if !os.IsNotExist(err) {
				t.Fatal(err)
			}
			args = append(args, dir)
			var stdout, stderr bytes.Buffer
			code := run(args, strings.NewReader(""), &stdout, &stderr)
			got := fmt.Sprintf("$ triage %s\nexit %d\n%s", strings.Join(args, " "), code, stdout.String())

			golden := filepath.Join("testdata", "check", name+".golden")
			if *updateGolden {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if got != string(want) {
				t.Errorf("triage %s differs from %s (stderr: %s)\n--- got\n%s--- want\n%s",
					strings.Join(args, " "), golden, stderr.String(), got, want)
			}
			// Every problem line is a position and a message, and the summary
			// goes to standard error only.
			for _, line := range strings.Split(strings.TrimSuffix(stdout.String(), "\n"), "\n") {
				if line == "" {
					continue
				}
				if !strings.HasPrefix(line, dir) && !strings.HasPrefix(line, "::") {
					t.Errorf("stdout line without a position: %q", line)
				}
			}
			if stderr.Len() == 0 || strings.Count(stderr.String(), "\n") != 1 {
				t.Errorf("stderr is not one summary line: %q", stderr.String())
			}
		})
	}
	if cases < 5 {
		t.Fatalf("only %d cases under testdata/check", cases)
	}
	// A golden file without its directory is a case that silently stopped
	// running.
	goldens, _ := filepath.Glob(filepath.Join("testdata", "check", "*.golden"))
	for _, g := range goldens {
		if st, err := os.Stat(strings.TrimSuffix(g, ".golden")); err != nil || !st.IsDir() {
			t.Errorf("%s has no case directory", g)
		}
	}
}
