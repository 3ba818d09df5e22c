package engine

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/triage-dev/triage/schemas"
)

// MemoryStore is the daemon's Store in this process's memory: the default
// on a fresh machine. It behaves like the durable store in every way a
// test can see (units of work see nothing of each other until they
// commit, and a rolled-back unit leaves nothing behind), except that
// everything is lost when the process stops.
type MemoryStore struct {
	// sharedMu is held by the unit of work that took the shared state,
	// from Tx.Shared until the unit ends.
	sharedMu sync.Mutex

	mu        sync.Mutex // guards everything below
	convs     map[string]*Conv
	contacts  map[string]schemas.Contact
	seen      map[string]bool
	locks     map[string]*convLock
	shared    *Shared // replaced whole at commit, never changed in place
	decisions map[string][]schemas.Decision
	messages  map[string][]schemas.Message
	sentBy    map[string]msgRef // WhatsApp message id -> the message
	statuses  map[string]bool
	early     map[string]string // statuses of messages not stored yet, by message id

	due   minHeap[dueEntry]    // conversations by next SLA deadline; stale entries are skipped
	dueAt map[string]time.Time // each conversation's indexed deadline

	items   map[int64]*memItem
	queues  map[string][]int64  // pending items of each order key, oldest first
	ready   minHeap[readyEntry] // the first item of each key, by when it may be claimed; stale entries are skipped
	pending int
	byConv  map[string][]int64
	dead    []int64
	nextID  int64
}

type convLock struct {
	mu   sync.Mutex
	refs int
}

type msgRef struct {
	conv  string
	index int
}

type memItem struct {
	OutboxItem
	leased time.Time // leased until
}

// readyEntry says that an item, first of its order key, may be claimed at
// at: its due time, or the end of its lease.
type readyEntry struct {
	at time.Time
	id int64
}

// readyLess orders ready items by time, then by id.
func readyLess(a, b readyEntry) bool {
	if !a.at.Equal(b.at) {
		return a.at.Before(b.at)
	}
	return a.id < b.id
}

// readyAt is when an item may be claimed, if it is first of its key.
func (it *memItem) readyAt() time.Time {
	if it.leased.After(it.Due) {
		return it.leased
	}
	return it.Due
}

// fresh reports whether a ready entry still describes its item: pending,
// first of its key, and ready when the entry says; called with mu held.
func (s *MemoryStore) fresh(e readyEntry) (*memItem, bool) {
	it := s.items[e.id]
	if it == nil || it.Result != schemas.DeliveryPending {
		return nil, false
	}
	q := s.queues[it.Order]
	return it, len(q) > 0 && q[0] == e.id && it.readyAt().Equal(e.at)
}

// offer files the first item of an order key as ready; called with mu
// held.
func (s *MemoryStore) offer(order string) {
	if q := s.queues[order]; len(q) > 0 {
		it := s.items[q[0]]
		s.ready.push(readyEntry{at: it.readyAt(), id: it.ID})
	}
}

// topReady drops stale entries and returns the earliest fresh one;
// called with mu held.
func (s *MemoryStore) topReady() (readyEntry, *memItem, bool) {
	for e, ok := s.ready.peek(); ok; e, ok = s.ready.peek() {
		if it, ok := s.fresh(e); ok {
			return e, it, true
		}
		s.ready.pop()
	}
	return readyEntry{}, nil, false
}

type dueEntry struct {
	at   time.Time
	conv string
}

// NewMemoryStore returns an empty store.
func NewMemoryStore() *MemoryStore {
	return &MemoryStore{
		convs:     map[string]*Conv{},
		contacts:  map[string]schemas.Contact{},
		seen:      map[string]bool{},
		locks:     map[string]*convLock{},
		shared:    NewShared(),
		decisions: map[string][]schemas.Decision{},
		messages:  map[string][]schemas.Message{},
		sentBy:    map[string]msgRef{},
		statuses:  map[string]bool{},
		early:     map[string]string{},
		due:       newMinHeap(func(a, b dueEntry) bool { return a.at.Before(b.at) }),
		ready:     newMinHeap(readyLess),
		dueAt:     map[string]time.Time{},
		items:     map[int64]*memItem{},
		queues:    map[string][]int64{},
		byConv:    map[string][]int64{},
	}
}

// ref takes a reference to a conversation's lock; called with mu held.
func (s *MemoryStore) ref(id string) *convLock {
	l := s.locks[id]
	if l == nil {
		l = &convLock{}
		s.locks[id] = l
	}
	l.refs++
	return l
}

// unref drops a reference; called with mu held.
func (s *MemoryStore) unref(id string, l *convLock) {
	if l.refs--; l.refs == 0 {
		delete(s.locks, id)
	}
}

func (s *MemoryStore) lock(ctx context.Context, id string) error {
	s.mu.Lock()
	l := s.ref(id)
	s.mu.Unlock()
	// A unit holds a conversation for as long as one evaluation takes; a
	// context ending meanwhile is noticed once the lock is taken.
	l.mu.Lock()
	if err := ctx.Err(); err != nil {
		l.mu.Unlock()
		s.mu.Lock()
		s.unref(id, l)
		s.mu.Unlock()
		return err
	}
	return nil
}

// tryLock takes a conversation's lock unless another unit holds it;
// called with mu held.
func (s *MemoryStore) tryLock(id string) bool {
	l := s.ref(id)
	if !l.mu.TryLock() {
		s.unref(id, l)
		return false
	}
	return true
}

// unlock releases a conversation's lock; called with mu held.
func (s *MemoryStore) unlock(id string) {
	l := s.locks[id]
	l.mu.Unlock()
	s.unref(id, l)
}

// Begin implements Store.
func (s *MemoryStore) Begin(ctx context.Context, convs []string, events []schemas.Event) (Tx, error) {
	ids := LockOrder(convs)
	tx := newMemTx(s)
	for _, id := range ids {
		if err := s.lock(ctx, id); err != nil {
			_ = tx.Rollback(ctx)
			return nil, fmt.Errorf("lock conversation %s: %w", id, err)
		}
		tx.held[id] = true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, ev := range events {
		if _, ok := tx.pre[ev.ID]; ok {
			continue // the same id twice in one unit: the second is a duplicate
		}
		tx.pre[ev.ID] = s.seen[ev.ID]
		if !s.seen[ev.ID] {
			// Reserved now, so a unit of another conversation carrying the
			// same id sees it; a rollback gives it back.
			s.seen[ev.ID] = true
			tx.reserved = append(tx.reserved, ev.ID)
		}
	}
	return tx, nil
}

// LockOrder returns the conversations a unit of work names in the order
// a store locks them: sorted, each once, without the empty id. One order
// for every unit is what keeps two units from waiting for each other in
// a cycle.
func LockOrder(ids []string) []string {
	out := make([]string, 0, len(ids))
	for _, id := range ids {
		if id != "" {
			out = append(out, id)
		}
	}
	sort.Strings(out)
	return slices.Compact(out)
}

// BeginDue implements Store.
func (s *MemoryStore) BeginDue(_ context.Context, now time.Time, limit int) (Tx, []string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var ids, skipped []dueEntry
	for next, ok := s.due.peek(); ok && len(ids) < limit && !next.at.After(now); next, ok = s.due.peek() {
		e := s.due.pop()
		if at, ok := s.dueAt[e.conv]; !ok || !at.Equal(e.at) {
			continue // stale: the deadline moved or fired
		}
		if !s.tryLock(e.conv) {
			skipped = append(skipped, e)
			continue
		}
		delete(s.dueAt, e.conv)
		ids = append(ids, e)
	}
	for _, e := range skipped {
		s.due.push(e)
	}
	if len(ids) == 0 {
		return nil, nil, nil
	}
	tx := newMemTx(s)
	out := make([]string, len(ids))
	for i, e := range ids {
		tx.held[e.conv] = true
		out[i] = e.conv
	}
	tx.popped = ids
	return tx, out, nil
}

// NextDeadline implements Store.
func (s *MemoryStore) NextDeadline(context.Context) (time.Time, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for e, ok := s.due.peek(); ok; e, ok = s.due.peek() {
		if at, ok := s.dueAt[e.conv]; ok && at.Equal(e.at) {
			return e.at, true, nil
		}
		s.due.pop()
	}
	return time.Time{}, false, nil
}

// index files a conversation under its next deadline; called with mu held.
func (s *MemoryStore) index(c *Conv) {
	next, ok := c.NextDeadline()
	old, had := s.dueAt[c.ID]
	switch {
	case !ok:
		delete(s.dueAt, c.ID)
	case !had || !old.Equal(next):
		s.dueAt[c.ID] = next
		s.due.push(dueEntry{at: next, conv: c.ID})
	}
}

// Conversation implements Store.
func (s *MemoryStore) Conversation(_ context.Context, id string) (ConversationRecord, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.convs[id]
	if c == nil {
		return ConversationRecord{}, false, nil
	}
	c = c.Clone()
	r := ConversationRecord{
		Conversation: c.Conversation,
		Notes:        append([]schemas.Note{}, c.Notes...),
		Contact:      s.contacts[c.Contact],
		Messages:     append([]schemas.Message{}, s.messages[id]...),
		Decisions:    append([]schemas.Decision{}, s.decisions[id]...),
		Deliveries:   []schemas.Delivery{},
	}
	for _, itemID := range s.byConv[id] {
		r.Deliveries = append(r.Deliveries, s.items[itemID].Delivery())
	}
	return r, true, nil
}

// Conversations implements Store.
func (s *MemoryStore) Conversations(_ context.Context, f ConversationFilter) ([]schemas.Conversation, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ids := make([]string, 0, len(s.convs))
	for id := range s.convs {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	out := []schemas.Conversation{}
	for _, id := range ids {
		if f.Limit > 0 && len(out) == f.Limit {
			break
		}
		if c := s.convs[id]; id > f.After && f.Match(&c.Conversation) {
			out = append(out, c.Clone().Conversation)
		}
	}
	return out, nil
}

// Messages implements Store.
func (s *MemoryStore) Messages(_ context.Context, conv string) ([]schemas.Message, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]schemas.Message{}, s.messages[conv]...), nil
}

// Contact implements Store.
func (s *MemoryStore) Contact(_ context.Context, id string) (schemas.Contact, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.contacts[id]
	return c, ok, nil
}

// QueueLengths implements Store.
func (s *MemoryStore) QueueLengths(context.Context) (map[string]int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.shared.QueueLengths(), nil
}

// Claim implements Store.
func (s *MemoryStore) Claim(_ context.Context, now time.Time, limit int, lease time.Duration) ([]OutboxItem, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []OutboxItem
	for len(out) < limit {
		e, it, ok := s.topReady()
		if !ok || e.at.After(now) {
			break
		}
		s.ready.pop()
		it.leased = now.Add(lease)
		it.Attempts++
		// Claimable again if the lease runs out undelivered.
		s.ready.push(readyEntry{at: it.readyAt(), id: it.ID})
		out = append(out, it.OutboxItem)
	}
	return out, nil
}

// pendingItem returns a pending item still claimed by the attempt of
// item: its deliverer may be late, its lease run out and the item claimed
// again, and then what it says no longer counts; called with mu held.
func (s *MemoryStore) pendingItem(item OutboxItem) (*memItem, error) {
	it := s.items[item.ID]
	if it == nil {
		return nil, fmt.Errorf("outbound item %d: no such item", item.ID)
	}
	if it.Result != schemas.DeliveryPending {
		return nil, fmt.Errorf("outbound item %d: already %s", item.ID, it.Result)
	}
	if it.Attempts != item.Attempts {
		return nil, fmt.Errorf("outbound item %d: claimed again since attempt %d", item.ID, item.Attempts)
	}
	return it, nil
}

// finish takes a pending item off its order key's queue; called with mu
// held.
func (s *MemoryStore) finish(it *memItem, result string, at time.Time, cause string) {
	it.Result, it.Done, it.Error, it.leased = result, at, cause, time.Time{}
	s.pending--
	q := s.queues[it.Order]
	if i := slices.Index(q, it.ID); i >= 0 {
		q = slices.Delete(q, i, i+1)
	}
	if len(q) == 0 {
		delete(s.queues, it.Order)
	} else {
		s.queues[it.Order] = q
		s.offer(it.Order)
	}
}

// Delivered implements Store.
func (s *MemoryStore) Delivered(_ context.Context, item OutboxItem, at time.Time, sent *schemas.Message) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	it, err := s.pendingItem(item)
	if err != nil {
		return err
	}
	s.finish(it, schemas.DeliveryDelivered, at, "")
	if sent != nil && it.Conversation != "" {
		s.addMessage(it.Conversation, *sent)
	}
	return nil
}

// addMessage appends a message; called with mu held.
func (s *MemoryStore) addMessage(conv string, m schemas.Message) {
	// Meta may report a status before the send's answer is recorded.
	if st, ok := s.early[m.ID]; ok && m.ID != "" {
		if StatusRank[st] > StatusRank[m.Status] {
			m.Status = st
		}
		delete(s.early, m.ID)
	}
	s.messages[conv] = append(s.messages[conv], m)
	if m.ID != "" {
		s.sentBy[m.ID] = msgRef{conv: conv, index: len(s.messages[conv]) - 1}
	}
}

// Retry implements Store.
func (s *MemoryStore) Retry(_ context.Context, item OutboxItem, due time.Time, cause string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	it, err := s.pendingItem(item)
	if err != nil {
		return err
	}
	it.Due, it.Error, it.leased = due, cause, time.Time{}
	s.offer(it.Order)
	return nil
}

// Dead implements Store.
func (s *MemoryStore) Dead(_ context.Context, item OutboxItem, at time.Time, cause string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	it, err := s.pendingItem(item)
	if err != nil {
		return err
	}
	s.finish(it, schemas.DeliveryDead, at, cause)
	s.dead = append(s.dead, it.ID)
	return nil
}

// Outbound implements Store.
func (s *MemoryStore) Outbound(context.Context) (OutboundStats, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := OutboundStats{Dead: len(s.dead), Pending: s.pending}
	if e, _, ok := s.topReady(); ok {
		st.NextDue = e.at
	}
	return st, nil
}

// DeadItems implements Store.
func (s *MemoryStore) DeadItems(_ context.Context, limit int) ([]OutboxItem, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := []OutboxItem{}
	for i := len(s.dead) - 1; i >= 0 && len(out) < limit; i-- {
		out = append(out, s.items[s.dead[i]].OutboxItem)
	}
	return out, nil
}

// Statuses implements Store.
func (s *MemoryStore) Statuses(_ context.Context, updates []StatusUpdate) ([]StatusUpdate, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var fresh []StatusUpdate
	for _, u := range updates {
		if s.statuses[u.Key] {
			continue
		}
		s.statuses[u.Key] = true
		if ref, ok := s.sentBy[u.MessageID]; ok {
			u.Conversation = ref.conv
			m := &s.messages[ref.conv][ref.index]
			if StatusRank[u.Status] > StatusRank[m.Status] {
				m.Status = u.Status
			}
		} else if u.MessageID != "" && StatusRank[u.Status] > StatusRank[s.early[u.MessageID]] {
			s.early[u.MessageID] = u.Status
		}
		fresh = append(fresh, u)
	}
	return fresh, nil
}

// Close implements Store.
func (s *MemoryStore) Close() {}

// memTx is a MemoryStore unit of work. It works on copies, written back
// at Commit.
type memTx struct {
	s        *MemoryStore
	held     map[string]bool // conversations locked by this unit
	convs    map[string]*Conv
	contacts map[string]*schemas.Contact
	original map[string]schemas.Contact // contacts as first read
	pre      map[string]bool            // events recorded by Begin: seen before?
	asked    map[string]bool            // ids Seen answered in this unit
	reserved []string                   // ids this unit added to seen
	shared   *Shared                    // a copy, while this unit holds sharedMu
	records  []Record
	popped   []dueEntry // BeginDue's entries, put back on Rollback
	done     bool
}

func newMemTx(s *MemoryStore) *memTx {
	return &memTx{s: s, held: map[string]bool{}, convs: map[string]*Conv{}, contacts: map[string]*schemas.Contact{},
		original: map[string]schemas.Contact{}, pre: map[string]bool{}, asked: map[string]bool{}}
}

var errTxDone = errors.New("unit of work already ended")

// Seen implements State.
func (tx *memTx) Seen(id string) (bool, error) {
	if tx.done {
		return false, errTxDone
	}
	if tx.asked[id] {
		return true, nil
	}
	tx.asked[id] = true
	if dup, ok := tx.pre[id]; ok {
		return dup, nil
	}
	s := tx.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.seen[id] {
		return true, nil
	}
	s.seen[id] = true
	tx.reserved = append(tx.reserved, id)
	return false, nil
}

// Conversation implements State.
func (tx *memTx) Conversation(id string) (*Conv, error) {
	if tx.done {
		return nil, errTxDone
	}
	if c := tx.convs[id]; c != nil {
		return c, nil
	}
	if !tx.held[id] {
		return nil, fmt.Errorf("conversation %s is not held by this unit of work", id)
	}
	tx.s.mu.Lock()
	c := tx.s.convs[id]
	tx.s.mu.Unlock()
	if c == nil {
		return nil, nil
	}
	c = c.Clone()
	tx.convs[id] = c
	return c, nil
}

// AddConversation implements State.
func (tx *memTx) AddConversation(c *Conv) error {
	if tx.done {
		return errTxDone
	}
	if !tx.held[c.ID] {
		return fmt.Errorf("conversation %s is not held by this unit of work", c.ID)
	}
	tx.convs[c.ID] = c
	return nil
}

// Contact implements State.
func (tx *memTx) Contact(id string) (*schemas.Contact, error) {
	if tx.done {
		return nil, errTxDone
	}
	if c := tx.contacts[id]; c != nil {
		return c, nil
	}
	tx.s.mu.Lock()
	c, ok := tx.s.contacts[id]
	tx.s.mu.Unlock()
	if !ok {
		c = schemas.Contact{ID: id}
	}
	tx.original[id] = c
	tx.contacts[id] = &c
	return &c, nil
}

// Shared implements State.
func (tx *memTx) Shared() (*Shared, error) {
	if tx.done {
		return nil, errTxDone
	}
	if tx.shared == nil {
		tx.s.sharedMu.Lock()
		tx.s.mu.Lock()
		tx.shared = tx.s.shared.clone()
		tx.s.mu.Unlock()
	}
	return tx.shared, nil
}

// Queued implements State.
func (tx *memTx) Queued(id string) (*Conv, error) {
	if tx.done {
		return nil, errTxDone
	}
	if !tx.held[id] {
		tx.s.mu.Lock()
		ok := tx.s.tryLock(id)
		tx.s.mu.Unlock()
		if !ok {
			return nil, nil
		}
		tx.held[id] = true
	}
	c, err := tx.Conversation(id)
	if c == nil && err == nil {
		// Unknown: resolved, so the queue lets go of it.
		c = NewConv(id, time.Time{})
		c.Status = schemas.StatusResolved
	}
	return c, err
}

// Peek implements State: the committed shared state, which a commit
// replaces whole and never changes in place.
func (tx *memTx) Peek() (*Shared, error) {
	if tx.done {
		return nil, errTxDone
	}
	if tx.shared != nil {
		return tx.shared, nil
	}
	tx.s.mu.Lock()
	defer tx.s.mu.Unlock()
	return tx.s.shared, nil
}

// Record implements Tx.
func (tx *memTx) Record(r Record) error {
	if tx.done {
		return errTxDone
	}
	tx.records = append(tx.records, r)
	return nil
}

// Commit implements Tx.
func (tx *memTx) Commit(context.Context) error {
	if tx.done {
		return errTxDone
	}
	s := tx.s
	s.mu.Lock()
	for id, c := range tx.convs {
		s.convs[id] = c
		s.index(c)
	}
	for id, c := range tx.contacts {
		changes := ContactChanges(tx.original[id], *c)
		cur, ok := s.contacts[id]
		if len(changes) == 0 && ok {
			continue
		}
		if !ok {
			cur = schemas.Contact{ID: id}
		}
		ApplyContactChanges(&cur, changes)
		s.contacts[id] = cur
	}
	if tx.shared != nil {
		s.shared = tx.shared
	}
	for _, r := range tx.records {
		conv := r.Decision.Event.Conversation
		s.decisions[conv] = append(s.decisions[conv], r.Decision)
		if r.Message != nil {
			s.addMessage(conv, *r.Message)
		}
		for _, o := range r.Outbound {
			s.nextID++
			it := &memItem{OutboxItem: o}
			it.ID, it.Result = s.nextID, schemas.DeliveryPending
			if it.Due.IsZero() {
				it.Due = it.At
			}
			s.items[it.ID] = it
			s.queues[it.Order] = append(s.queues[it.Order], it.ID)
			s.pending++
			if len(s.queues[it.Order]) == 1 {
				s.offer(it.Order)
			}
			if it.Conversation != "" {
				s.byConv[it.Conversation] = append(s.byConv[it.Conversation], it.ID)
			}
		}
	}
	// A due conversation the unit never loaded keeps its deadline.
	for _, e := range tx.popped {
		if _, loaded := tx.convs[e.conv]; !loaded {
			if _, ok := s.dueAt[e.conv]; !ok {
				s.dueAt[e.conv] = e.at
				s.due.push(e)
			}
		}
	}
	tx.popped = nil
	tx.release()
	s.mu.Unlock()
	return nil
}

// Rollback implements Tx.
func (tx *memTx) Rollback(context.Context) error {
	if tx.done {
		return nil
	}
	s := tx.s
	s.mu.Lock()
	for _, id := range tx.reserved {
		delete(s.seen, id)
	}
	for _, e := range tx.popped {
		if _, ok := s.dueAt[e.conv]; !ok {
			s.dueAt[e.conv] = e.at
			s.due.push(e)
		}
	}
	tx.release()
	s.mu.Unlock()
	return nil
}

// release ends the unit and lets go of its locks; called with s.mu held.
func (tx *memTx) release() {
	tx.done = true
	for id := range tx.held {
		tx.s.unlock(id)
	}
	if tx.shared != nil {
		tx.s.sharedMu.Unlock()
	}
}

// clone returns a deep copy, for a unit of work to change.
func (s *Shared) clone() *Shared {
	out := &Shared{agents: make(map[string]*AgentState, len(s.agents)), teams: make(map[string]*TeamState, len(s.teams)),
		freed: s.freed, drainedWith: s.drainedWith}
	for id, a := range s.agents {
		c := *a
		out.agents[id] = &c
	}
	for name, t := range s.teams {
		c := *t
		c.Queue = append([]QueueEntry(nil), t.Queue...)
		out.teams[name] = &c
	}
	return out
}

var (
	_ Store = (*MemoryStore)(nil)
	_ Tx    = (*memTx)(nil)
)
