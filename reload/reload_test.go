package reload_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/triage-dev/triage/reload"
	"github.com/triage-dev/triage/rules"
)

func ruleFile(threshold string) string {
	return "version: 1\nparams: {t: " + threshold + "}\nrules:\n  - name: low\n    on: [bot.answered]\n    when: event.confidence < params.t\n    actions: [{escalate: {reason: low}}]\n"
}

const broken = "version: 1\nrules:\n  - name: low\n    on: [bot.answerd]\n    actions: [ask_bot]\n"

func write(t *testing.T, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

// saveLikeVim writes a new version beside the file and renames it over,
// as editors that save atomically do.
func saveLikeVim(t *testing.T, path, data string) {
	t.Helper()
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".swp")
	write(t, tmp, data)
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// eventually waits for cond, up to a generous deadline: the watcher works
// asynchronously. It asserts an outcome, not a speed.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func threshold(h *reload.Holder) any {
	v, _ := h.Set().Param("t")
	return v
}

func watch(t *testing.T, h *reload.Holder, poll time.Duration) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.Watch(ctx, 50*time.Millisecond, poll) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("watch: %v", err)
		}
	})
	time.Sleep(100 * time.Millisecond) // let the watcher register
}

func TestReloadKeepsLastGoodSet(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "params.yaml")
	write(t, path, ruleFile("0.6"))
	h, err := reload.New(dir, rules.Options{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	first := h.Status().Version
	var seen []reload.Status
	h.OnReload = func(s reload.Status) { seen = append(seen, s) }

	if err := h.Reload(); !errors.Is(err, reload.ErrUnchanged) {
		t.Fatalf("unchanged directory: %v", err)
	}
	write(t, path, broken)
	err = h.Reload()
	if _, ok := rules.AsErrors(err); !ok {
		t.Fatalf("broken edit: %v", err)
	}
	st := h.Status()
	if st.OK || st.Version != first || threshold(h) != 0.6 || !strings.Contains(st.LastError, `unknown event type "bot.answerd"`) || len(st.Problems) == 0 {
		t.Fatalf("after a broken edit: %+v", st)
	}
	// Until the files change, reloading again returns the same rejection
	// without a second attempt, log line or OnReload call.
	if err2 := h.Reload(); err2 == nil || err2.Error() != err.Error() || len(seen) != 1 {
		t.Fatalf("same broken files again: %v, %d notifications", err2, len(seen))
	}
	write(t, path, ruleFile("0.6")) // undone
	if err := h.Reload(); !errors.Is(err, reload.ErrUnchanged) || !h.Status().OK || h.Status().LastError != "" {
		t.Fatalf("after undoing: %v %+v", err, h.Status())
	}
	write(t, path, ruleFile("0.7"))
	if err := h.Reload(); err != nil || threshold(h) != 0.7 || h.Status().Version == first {
		t.Fatalf("good edit: %v %+v", err, h.Status())
	}
	if len(seen) != 3 || seen[0].OK || !seen[1].OK || !seen[2].OK {
		t.Errorf("OnReload saw %+v", seen)
	}
}

func TestNewRefusesABrokenDirectory(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "r.yaml"), broken)
	if _, err := reload.New(dir, rules.Options{}, nil); err == nil {
		t.Fatal("a broken first load must fail")
	}
}

func TestWatchEditorSave(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "params.yaml")
	write(t, path, ruleFile("0.6"))
	h, err := reload.New(dir, rules.Options{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	watch(t, h, 0) // events only: no poll to hide a missed event
	saveLikeVim(t, path, ruleFile("0.5"))
	eventually(t, "the renamed-over file to load", func() bool { return threshold(h) == 0.5 })
	saveLikeVim(t, path, broken)
	eventually(t, "the broken save to be rejected", func() bool { return !h.Status().OK })
	if threshold(h) != 0.5 {
		t.Fatalf("the broken save replaced the running set")
	}
	// A new subdirectory with rules is watched and loaded too.
	saveLikeVim(t, path, ruleFile("0.4"))
	eventually(t, "the fixed save", func() bool { return threshold(h) == 0.4 && h.Status().OK })
	sub := filepath.Join(dir, "more")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	write(t, filepath.Join(sub, "extra.yaml"), "version: 1\nlists: {x: [a]}\nrules:\n  - {name: extra, on: [message.received], when: 'contains_any(event.text, lists.x)', actions: [ask_bot]}\n")
	eventually(t, "the new subdirectory's file", func() bool { return h.Set().Rule("extra") != nil })
}

// TestWatchConfigMapSwap swaps the directory the way the kubelet updates a
// mounted ConfigMap: the files are symlinks through ..data, which is
// atomically renamed to point at a new timestamped directory.
func TestWatchConfigMapSwap(t *testing.T) {
	dir := t.TempDir()
	version := func(name, content string) {
		d := filepath.Join(dir, name)
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
		write(t, filepath.Join(d, "params.yaml"), content)
	}
	version("..2026_11_21_10_00_00.1", ruleFile("0.6"))
	if err := os.Symlink("..2026_11_21_10_00_00.1", filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("..data/params.yaml", filepath.Join(dir, "params.yaml")); err != nil {
		t.Fatal(err)
	}
	h, err := reload.New(dir, rules.Options{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if files := h.Set().Files(); len(files) != 1 || files[0] != "params.yaml" {
		t.Fatalf("the timestamped directory must not be read twice: %v", files)
	}
	watch(t, h, 0)
	version("..2026_11_21_10_05_00.2", ruleFile("0.3"))
	if err := os.Symlink("..2026_11_21_10_05_00.2", filepath.Join(dir, "..data_tmp")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(dir, "..data_tmp"), filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the swapped ConfigMap to load", func() bool { return threshold(h) == 0.3 })
}

func TestWatchPollFallback(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "params.yaml")
	write(t, path, ruleFile("0.6"))
	h, err := reload.New(dir, rules.Options{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	// A change made before the watcher starts sends it no event: only the
	// checksum poll can find it.
	write(t, path, ruleFile("0.2"))
	watch(t, h, 100*time.Millisecond)
	eventually(t, "the poll to notice", func() bool { return threshold(h) == 0.2 })
}
