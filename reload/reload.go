// Package reload keeps the running rule set and replaces it, whole, when
// the rule directory changes: a support lead's edit is live within a
// second, and a broken edit is rejected while the last good set keeps
// running.
//
// Every reload builds the complete new set before anything is touched;
// only then is it swapped in, atomically (the idea of alertmanager's
// app/reloader.go). Events already being evaluated finish on the set they
// started with, since callers take the set once per event.
//
// Watch notices changes three ways, because each misses some: fsnotify
// events on the directory and its subdirectories (editors that save by
// renaming, a Kubernetes ConfigMap's atomic ..data symlink swap), a
// debounce so one save that is several file events is one reload, and a
// periodic checksum of the directory for file systems that send no events.
// Signals and HTTP endpoints belong to the caller, which calls Reload.
package reload

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/triage-dev/triage/rules"
)

// Status is the outcome of the latest reload attempt and what is running.
type Status struct {
	Version     string       `json:"version"`      // the running set's
	Files       int          `json:"files"`        // the running set's rule files
	Rules       int          `json:"rules"`        // the running set's rules
	LoadedAt    time.Time    `json:"loaded_at"`    // when the running set was loaded
	LastAttempt time.Time    `json:"last_attempt"` // the latest reload, good or bad
	OK          bool         `json:"ok"`           // whether the latest attempt succeeded
	LastError   string       `json:"last_error,omitempty"`
	Problems    rules.Errors `json:"-"` // the latest failure's problems, with positions
}

// Holder holds the running rule set.
type Holder struct {
	dir  string
	opts rules.Options
	log  *slog.Logger
	now  func() time.Time

	cur    atomic.Pointer[rules.Set]
	status atomic.Pointer[Status]
	mu     sync.Mutex // one reload at a time
	// rejected is the version of the files last rejected, with its error:
	// the poll meets them every few seconds until someone fixes them, and
	// saying so once is enough.
	rejected    string
	rejectedErr error

	// OnReload, when set before Watch or Reload is first called, is told
	// of every attempt: metrics hang here.
	OnReload func(Status)
}

// New loads dir. The first load must succeed: there is no last good set
// to fall back on.
func New(dir string, opts rules.Options, log *slog.Logger) (*Holder, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	h := &Holder{dir: dir, opts: opts, log: log, now: time.Now}
	set, err := rules.Load(dir, opts)
	if err != nil {
		return nil, fmt.Errorf("load rules: %w", err)
	}
	h.cur.Store(set)
	now := h.now()
	h.status.Store(&Status{Version: set.Version(), Files: len(set.Files()), Rules: len(set.Rules()), LoadedAt: now, LastAttempt: now, OK: true})
	return h, nil
}

// Set returns the running set. Take it once per event.
func (h *Holder) Set() *rules.Set { return h.cur.Load() }

// Status returns the latest reload's outcome.
func (h *Holder) Status() Status { return *h.status.Load() }

// ErrUnchanged reports a reload that found the same files: nothing to do.
var ErrUnchanged = errors.New("rules unchanged")

// Reload reads and compiles the directory and, if that succeeds, swaps the
// new set in. On failure the running set stays, and the error (an
// rules.Errors when the files have problems) is returned and kept in
// Status. A directory whose files did not change returns ErrUnchanged.
func (h *Holder) Reload() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	files, _, err := rules.ReadDir(h.dir)
	if err == nil && rules.Version(files) == h.cur.Load().Version() {
		if st := *h.status.Load(); !st.OK {
			// A broken edit was undone: the files are the running set again.
			h.rejected, h.rejectedErr = "", nil
			st.OK, st.LastError, st.Problems, st.LastAttempt = true, "", nil, h.now()
			h.status.Store(&st)
			h.log.Info("rule directory matches the running set again", "dir", h.dir, "version", st.Version)
			h.notify(st)
		}
		return ErrUnchanged
	}
	if err == nil && h.rejected != "" && rules.Version(files) == h.rejected {
		return h.rejectedErr
	}
	var set *rules.Set
	if err == nil {
		opts := h.opts
		opts.Dir = h.dir
		set, err = rules.Compile(files, opts)
	}
	st := *h.status.Load()
	st.LastAttempt = h.now()
	if err != nil {
		st.OK, st.LastError, st.Problems = false, err.Error(), nil
		if es, ok := rules.AsErrors(err); ok {
			st.Problems = es
		}
		h.status.Store(&st)
		if files != nil {
			h.rejected, h.rejectedErr = rules.Version(files), err
		}
		h.log.Error("rule reload rejected; the last good rule set keeps running",
			"dir", h.dir, "running", st.Version, "error", err)
		h.notify(st)
		return err
	}
	h.rejected, h.rejectedErr = "", nil
	old := h.cur.Swap(set)
	st = Status{Version: set.Version(), Files: len(set.Files()), Rules: len(set.Rules()), LoadedAt: st.LastAttempt, LastAttempt: st.LastAttempt, OK: true}
	h.status.Store(&st)
	h.log.Info("rules reloaded", "dir", h.dir, "from", old.Version(), "to", set.Version(), "rules", st.Rules)
	h.notify(st)
	return nil
}

func (h *Holder) notify(st Status) {
	if h.OnReload != nil {
		h.OnReload(st)
	}
}

// Watch reloads on changes until ctx ends: file events debounced by
// debounce, and a checksum poll every poll (0 disables it). Reload
// failures are logged and kept in Status, never returned: a broken edit
// must not stop the watching.
func (h *Holder) Watch(ctx context.Context, debounce, poll time.Duration) error {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("watch rules: %w", err)
	}
	defer w.Close()
	if err := h.addDirs(w); err != nil {
		return fmt.Errorf("watch rules: %w", err)
	}
	var pollC <-chan time.Time
	if poll > 0 {
		t := time.NewTicker(poll)
		defer t.Stop()
		pollC = t.C
	}
	var fire <-chan time.Time
	var timer *time.Timer
	for {
		select {
		case <-ctx.Done():
			if timer != nil {
				timer.Stop()
			}
			return nil
		case ev, ok := <-w.Events:
			if !ok {
				return nil
			}
			// A new directory (a ConfigMap's timestamped one, a new
			// subfolder of rules) must be watched too.
			if ev.Has(fsnotify.Create) {
				if st, err := os.Stat(ev.Name); err == nil && st.IsDir() {
					_ = h.addDirs(w)
				}
			}
			if timer == nil {
				timer = time.NewTimer(debounce)
			} else {
				timer.Reset(debounce)
			}
			fire = timer.C
		case err, ok := <-w.Errors:
			if !ok {
				return nil
			}
			h.log.Warn("rule watcher error; the checksum poll still runs", "error", err)
		case <-fire:
			fire = nil
			_ = h.addDirs(w)
			h.reloadQuietly()
		case <-pollC:
			h.reloadQuietly()
		}
	}
}

func (h *Holder) reloadQuietly() {
	if err := h.Reload(); err != nil && !errors.Is(err, ErrUnchanged) {
		return // logged and kept in Status by Reload
	}
}

// addDirs watches the rule directory and every directory below it,
// hidden ones included: the ConfigMap swap happens in ..data.
func (h *Holder) addDirs(w *fsnotify.Watcher) error {
	root, err := filepath.EvalSymlinks(h.dir)
	if err != nil {
		return err
	}
	watched := map[string]bool{}
	for _, p := range w.WatchList() {
		watched[p] = true
	}
	add := func(p string) error {
		if watched[p] {
			return nil
		}
		watched[p] = true
		return w.Add(p)
	}
	if err := add(h.dir); err != nil {
		return err
	}
	return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil // a directory vanishing mid-walk is a swap in progress
		}
		if d.IsDir() {
			return add(p)
		}
		return nil
	})
}
