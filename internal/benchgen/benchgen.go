// Package benchgen generates the synthetic rule sets and event streams the
// benchmarks run on (docs/benchmarks.md). Everything is derived from a
// fixed seed, so every run measures the same input.
package benchgen

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/triage-dev/triage/rules"
	"github.com/triage-dev/triage/schemas"
)

// Seed is the seed every benchmark input is derived from.
const Seed = 20261121

// Start is the event clock's origin.
var Start = time.Date(2026, 11, 21, 8, 0, 0, 0, time.UTC)

// supportWords are real words a keyword list of a support team holds; the
// rest of the keyword vocabulary is made of pronounceable generated words.
var supportWords = strings.Fields(`refund refunds chargeback reimburse invoice receipt billing
	overcharged discount coupon voucher subscription cancel cancellation renew renewal
	upgrade downgrade trial password login locked otp verification account profile email
	delivery delivered courier tracking shipment parcel package missing damaged broken
	defective faulty replacement exchange warranty repair return returns pickup address
	delayed late stuck pending failed declined upi wallet netbanking emi installment
	complaint complain unacceptable terrible awful worst disappointed angry frustrated
	scam fraud unauthorised hacked stolen urgent emergency asap immediately human agent
	manager supervisor escalate callback helpline lawyer consumer court police cheated
	size colour color fit stock restock preorder backorder outlet store branch appointment
	booking reschedule slot voucher gift loyalty points cashback promo referral sim
	recharge roaming network signal outage wifi router modem installation technician
	invoice gst tax pan aadhaar kyc statement balance overdraft loan interest premium
	policy claim insurance nominee pension`)

// filler is what customer messages are mostly made of: the words that hit
// no list.
var filler = strings.Fields(`hi hello hey good morning evening please thanks thank you
	i my me we our us it this that the a an is was are were be been have has had do does
	did not no yes ok okay can could would should will just still again also already yet
	why what when where how who which there here today yesterday tomorrow week days hours
	since ago last next order ordered bought paid payment money app website phone number
	message messages reply answer help need want got get tried try trying checked see
	seen says said shows showing told wrong right same different new old first second
	only very really so too much many time times problem issue question about with for
	from to on in at of by up out any some all nothing something anything everything
	someone anyone please kindly sir madam team support chat`)

var closers = []string{".", ".", "?", "?", "!", "...", ""}

var unicodeBits = []string{"🙏", "😡", "🙂", "José", "café", "Bogotá", "München", "👍", "naïve", "Zoë"}

// Vocabulary returns n distinct lowercase keyword words: the real support
// words first, then generated ones, none of them a filler word.
func Vocabulary(n int, seed uint64) []string {
	r := rand.New(rand.NewPCG(seed, 1))
	seen := map[string]bool{}
	for _, w := range filler {
		seen[w] = true
	}
	var out []string
	for _, w := range supportWords {
		if len(out) < n && !seen[w] {
			seen[w] = true
			out = append(out, w)
		}
	}
	onsets := strings.Fields("b c d f g h j k l m n p r s t v w z br cl dr fl gr pl st tr sh ch th sk")
	vowels := strings.Fields("a e i o u a e i o ai ea ou io")
	codas := []string{"", "", "", "n", "r", "s", "l", "t", "nd", "st", "ck", "m", "x"}
	for len(out) < n {
		var b strings.Builder
		for s, k := 0, 2+r.IntN(2); s < k; s++ {
			b.WriteString(onsets[r.IntN(len(onsets))])
			b.WriteString(vowels[r.IntN(len(vowels))])
			if s == k-1 || r.IntN(3) == 0 {
				b.WriteString(codas[r.IntN(len(codas))])
			}
		}
		if w := b.String(); !seen[w] {
			seen[w] = true
			out = append(out, w)
		}
	}
	return out
}

// Synthetic is a generated rule set and what it was built from.
type Synthetic struct {
	Files      []rules.File
	Lists      [][]string // keyword list i, named kwI
	Thresholds []float64  // param tI of threshold rule i
	Vocabulary []string   // every word the lists draw from
}

// SyntheticSet builds keyword keyword rules, each
//
//	on: [message.received]
//	when: contains_any(event.text, lists.kwN)
//	actions: [tag: {add: [kwN]}]
//
// with list kwN holding words distinct words drawn from a vocabulary of
// 3*keyword words (so lists share words now and then), and threshold
// rules, each
//
//	on: [bot.answered]
//	when: event.confidence < params.tN
//	actions: [set_priority: {priority: high}]
//
// with tN spread evenly over (0, 1) in a shuffled order.
func SyntheticSet(keyword, threshold, words int, seed uint64) Synthetic {
	r := rand.New(rand.NewPCG(seed, 2))
	s := Synthetic{Vocabulary: Vocabulary(3*keyword, seed)}
	var vocab, rs bytes.Buffer
	vocab.WriteString("version: 1\n\nlists:\n")
	for i := 0; i < keyword; i++ {
		picked := map[int]bool{}
		var list []string
		for len(list) < words {
			k := r.IntN(len(s.Vocabulary))
			if !picked[k] {
				picked[k] = true
				list = append(list, s.Vocabulary[k])
			}
		}
		s.Lists = append(s.Lists, list)
		fmt.Fprintf(&vocab, "  kw%d: [%s]\n", i, strings.Join(list, ", "))
	}
	vocab.WriteString("\nparams:\n")
	perm := r.Perm(threshold)
	for i := 0; i < threshold; i++ {
		t := float64(perm[i]+1) / float64(threshold+1)
		s.Thresholds = append(s.Thresholds, t)
		fmt.Fprintf(&vocab, "  t%d: %g\n", i, t)
	}
	rs.WriteString("version: 1\n\nrules:\n")
	for i := 0; i < keyword; i++ {
		fmt.Fprintf(&rs, "  - name: kw-%d\n    on: [message.received]\n    when: contains_any(event.text, lists.kw%d)\n    actions:\n      - tag: {add: [kw%d]}\n", i, i, i)
	}
	for i := 0; i < threshold; i++ {
		fmt.Fprintf(&rs, "  - name: threshold-%d\n    on: [bot.answered]\n    when: event.confidence < params.t%d\n    actions:\n      - set_priority: {priority: high}\n", i, i)
	}
	s.Files = []rules.File{
		{Path: "rules.yaml", Data: rs.Bytes()},
		{Path: "vocabulary.yaml", Data: vocab.Bytes()},
	}
	return s
}

// StreamConfig shapes a generated event stream.
type StreamConfig struct {
	Events        int
	Conversations int // distinct conversation ids
	Active        int // conversations in an episode at the same time
	Seed          uint64
	// Keywords are the words (or phrases) a customer message sometimes
	// holds; KeywordRate is the chance a message holds one (and then, one
	// time in four, a second).
	Keywords    []string
	KeywordRate float64
	// Agents, when set, makes a full support stream: agents reply, resolve
	// and reassign conversations and change their status. Without it the
	// stream holds only message.received and bot.answered.
	Agents []string
	// Abandoned is, in a full stream, the share of episodes nobody
	// resolves: the customer went quiet and the conversation stays open,
	// holding its assignee's capacity, for the rest of the stream. Zero:
	// every episode ends with conversation.resolved.
	Abandoned float64
	// LowConfidence, when set, is the share of bot answers below 0.6
	// (uniform in [0, 0.6), the rest uniform in [0.6, 1]); unset, every
	// confidence is uniform in [0, 1].
	LowConfidence float64
	// AgentEpisodes is, in a full stream, the share of episodes in which
	// an agent replies; 0.5 when unset.
	AgentEpisodes float64
	// MeanGap is the mean time between two events; 1.6 s when unset (a
	// busy inbox). A week of traffic for a small team sets it in minutes.
	MeanGap time.Duration
}

type convScript struct {
	id      string
	started bool
	next    []string // event types still to come in this episode
}

// Stream generates a stream of valid events in time order: conversations
// go through episodes (the customer writes, the bot answers, and in a full
// stream an agent may take over and resolve), Active of them at a time,
// each episode on one of Conversations conversations picked at random.
// Ids are unique.
func Stream(cfg StreamConfig) []schemas.Event {
	r := rand.New(rand.NewPCG(cfg.Seed, 3))
	convs := make([]*convScript, cfg.Conversations)
	for i := range convs {
		convs[i] = &convScript{id: fmt.Sprintf("wa-9198%06d", 100000+i*37%900000)}
	}
	idle := r.Perm(cfg.Conversations)
	active := make([]int, 0, cfg.Active)
	for len(active) < cfg.Active && len(idle) > 0 {
		active, idle = append(active, idle[0]), idle[1:]
		convs[active[len(active)-1]].next = episode(r, cfg)
	}
	at := Start
	out := make([]schemas.Event, 0, cfg.Events)
	for len(out) < cfg.Events {
		k := r.IntN(len(active))
		c := convs[active[k]]
		typ := c.next[0]
		c.next = c.next[1:]
		if cfg.MeanGap > 0 {
			// Uniform in [MeanGap/8, 15/8 MeanGap): the same mean, no bursts of zero.
			at = at.Add(cfg.MeanGap/8 + time.Duration(r.Int64N(int64(cfg.MeanGap)*7/4)))
		} else {
			at = at.Add(time.Duration(200+r.IntN(2800)) * time.Millisecond)
		}
		ev := schemas.Event{
			ID:           fmt.Sprintf("ev-%07d", len(out)),
			Type:         typ,
			At:           at,
			Conversation: c.id,
		}
		if !c.started {
			c.started = true
			ev.Contact = &schemas.Contact{ID: c.id, Name: names[r.IntN(len(names))], Language: "en", Phone: "+" + strings.TrimPrefix(c.id, "wa-")}
		}
		switch typ {
		case schemas.MessageReceived:
			ev.Kind = "text"
			ev.Text = customerText(r, cfg.Keywords, cfg.KeywordRate)
		case schemas.BotAnswered:
			ev.Text = botText(r)
			switch {
			case cfg.LowConfidence == 0:
				ev.Confidence = float64(r.IntN(1001)) / 1000
			case r.Float64() < cfg.LowConfidence:
				ev.Confidence = float64(r.IntN(600)) / 1000
			default:
				ev.Confidence = float64(600+r.IntN(401)) / 1000
			}
			ev.Resolved = ev.Confidence > 0.8 && r.IntN(2) == 0
		case schemas.AgentReplied:
			ev.Agent = cfg.Agents[r.IntN(len(cfg.Agents))]
			ev.Text = botText(r)
		case schemas.ConversationAssigned, schemas.ConversationResolved:
			ev.Agent = cfg.Agents[r.IntN(len(cfg.Agents))]
		}
		out = append(out, ev)
		if cfg.Agents != nil && r.IntN(400) == 0 {
			// An agent steps away or comes back now and then; away is
			// short, so the team is mostly online.
			a := cfg.Agents[r.IntN(len(cfg.Agents))]
			status := schemas.AgentOnline
			if r.IntN(6) == 0 {
				status = schemas.AgentAway
			}
			at = at.Add(time.Second)
			out = append(out, schemas.Event{ID: fmt.Sprintf("ev-%07d", len(out)), Type: schemas.AgentStatus, At: at, Agent: a, Status: status})
		}
		if len(c.next) == 0 {
			// The episode is over: another conversation (maybe the same
			// customer again) takes its place.
			idle = append(idle, active[k])
			j := r.IntN(len(idle))
			active[k] = idle[j]
			idle = append(idle[:j], idle[j+1:]...)
			convs[active[k]].next = episode(r, cfg)
		}
	}
	return out[:cfg.Events]
}

// episode scripts one stretch of a conversation.
func episode(r *rand.Rand, cfg StreamConfig) []string {
	full := cfg.Agents != nil
	var s []string
	for turns := 1 + r.IntN(4); turns > 0; turns-- {
		s = append(s, schemas.MessageReceived)
		if r.IntN(10) < 9 {
			s = append(s, schemas.BotAnswered)
		}
	}
	if !full {
		return s
	}
	agentShare := cfg.AgentEpisodes
	if agentShare == 0 {
		agentShare = 0.5
	}
	if r.Float64() < agentShare {
		if r.IntN(10) == 0 {
			s = append(s, schemas.ConversationAssigned)
		}
		for replies := 1 + r.IntN(3); replies > 0; replies-- {
			s = append(s, schemas.AgentReplied, schemas.MessageReceived)
		}
		s = append(s, schemas.AgentReplied)
	}
	if r.Float64() >= cfg.Abandoned {
		s = append(s, schemas.ConversationResolved)
	}
	return s
}

var names = strings.Fields("Asha Ravi Priya Arjun Meera Karan Sara Tom Lucia Diego Ana Wei Fatima Omar Nia Kofi Emma Liam Yuki Ivan")

// customerText is 10 to 25 words of a customer's message.
func customerText(r *rand.Rand, keywords []string, rate float64) string {
	n := 10 + r.IntN(16)
	words := make([]string, n)
	for i := range words {
		words[i] = filler[r.IntN(len(filler))]
	}
	if len(keywords) > 0 && r.Float64() < rate {
		hits := 1
		if r.IntN(4) == 0 {
			hits = 2
		}
		for ; hits > 0; hits-- {
			w := keywords[r.IntN(len(keywords))]
			if r.IntN(8) == 0 {
				w = strings.ToUpper(w)
			}
			words[r.IntN(n)] = w
		}
	}
	if r.IntN(20) == 0 {
		words[r.IntN(n)] = unicodeBits[r.IntN(len(unicodeBits))]
	}
	if r.IntN(3) > 0 {
		words[0] = strings.ToUpper(words[0][:1]) + words[0][1:]
	}
	if r.IntN(4) == 0 {
		k := 2 + r.IntN(n-3)
		words[k] += ","
	}
	return strings.Join(words, " ") + closers[r.IntN(len(closers))]
}

var botPhrases = []string{
	"I can help with that.", "Your order is on its way and should arrive within 3-5 working days.",
	"You can track it from the Orders page of the app.", "I've sent a reset link to your registered email.",
	"Refunds are credited to the original payment method in 5-7 days.", "Could you share your order number?",
	"Our stores are open from 10 am to 9 pm.", "You can change the delivery address until the order ships.",
	"Is there anything else I can help you with?", "Sorry for the trouble.",
}

func botText(r *rand.Rand) string {
	n := 2 + r.IntN(2)
	parts := make([]string, n)
	for i := range parts {
		parts[i] = botPhrases[r.IntN(len(botPhrases))]
	}
	return strings.Join(parts, " ")
}

// Agents returns the id of every member of every team of set, in the
// set's order: the agents a full stream (StreamConfig.Agents) names.
func Agents(set *rules.Set) []string {
	var out []string
	for _, team := range set.Teams() {
		for _, a := range team.Members {
			out = append(out, a.ID)
		}
	}
	return out
}

// Filter returns the events of the given type, in order.
func Filter(events []schemas.Event, typ string) []schemas.Event {
	var out []schemas.Event
	for _, ev := range events {
		if ev.Type == typ {
			out = append(out, ev)
		}
	}
	return out
}

// JSONLines encodes events one per line, as a replay file holds them.
func JSONLines(events []schemas.Event) []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	for i := range events {
		if err := enc.Encode(&events[i]); err != nil {
			panic(err)
		}
	}
	return b.Bytes()
}
