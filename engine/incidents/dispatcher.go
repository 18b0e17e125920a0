package incidents

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/hoodcloud/hoodcloud/engine"
)

// Store is what the dispatcher reads and writes: incidents, and nodes for
// their chain profile.
type Store interface {
	engine.IncidentStore
	GetNode(ctx context.Context, id string) (*engine.Node, error)
}

// Config configures a Dispatcher; zero fields take the defaults.
type Config struct {
	Store    Store
	Channels []Channel
	// MaxAttempts is how many failures of one event a notifier is allowed
	// before the event is dead-lettered (8).
	MaxAttempts int
	// Backoff is the wait after a first failure, doubled after each next
	// one (10s) up to MaxBackoff (10m).
	Backoff    time.Duration
	MaxBackoff time.Duration
	// Recheck is how often an open incident with nothing due is looked at
	// again, so that a notifier configured later hears of it (10m).
	Recheck time.Duration
	// Batch bounds the incidents one turn handles (100).
	Batch  int
	Now    func() time.Time
	Logger *slog.Logger
	// Observe, when set, hears the outcome of every attempt (metrics).
	Observe func(channel string, e engine.IncidentEvent, o Outcome)
}

// Outcome is how an attempt to deliver went.
type Outcome string

const (
	Delivered    Outcome = "delivered"
	Failed       Outcome = "failed"
	DeadLettered Outcome = "dead_lettered" // failed for the last time
)

func (c Config) withDefaults() Config {
	if c.MaxAttempts <= 0 {
		c.MaxAttempts = 8
	}
	if c.Backoff <= 0 {
		c.Backoff = 10 * time.Second
	}
	if c.MaxBackoff < c.Backoff {
		c.MaxBackoff = max(10*time.Minute, c.Backoff)
	}
	if c.Recheck <= 0 {
		c.Recheck = 10 * time.Minute
	}
	if c.Batch <= 0 {
		c.Batch = 100
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Dispatcher delivers incident events to the channels. Dispatch is
// leader-only work and is not safe to run concurrently with itself.
type Dispatcher struct{ cfg Config }

// NewDispatcher returns a dispatcher; it does no I/O.
func NewDispatcher(cfg Config) *Dispatcher { return &Dispatcher{cfg: cfg.withDefaults()} }

// recordTimeout bounds the write of an outcome, which is made even while
// ctx is ending: a delivery made must be recorded, or it would repeat.
const recordTimeout = 10 * time.Second

// recordAttempts bounds the re-reads after a concurrent change (a
// resolution or an acknowledgement) of the incident being recorded.
const recordAttempts = 5

// Dispatch delivers what is due now, Batch incidents at a time, soonest
// due first, until nothing is due (or dispatchRounds batches went by, so a
// turn ends even when deliveries fail as fast as they come due). It stops
// at the first store error (ErrStaleLeader in its chain once another
// instance leads); a notifier's failure is recorded on the incident, not
// returned.
func (d *Dispatcher) Dispatch(ctx context.Context) error {
	chains := map[string]string{}
	for range dispatchRounds {
		due, err := d.cfg.Store.ListIncidentsToNotify(ctx, d.cfg.Now().UTC(), d.cfg.Batch)
		if err != nil {
			return fmt.Errorf("list incidents to notify: %w", err)
		}
		for _, in := range due {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if err := d.dispatchIncident(ctx, in, chains); err != nil {
				return err
			}
		}
		if len(due) < d.cfg.Batch {
			return nil
		}
	}
	return nil
}

// dispatchRounds bounds the batches of one Dispatch: a whole fleet's
// incidents opening at once (a chain halt) are told within one turn.
const dispatchRounds = 50

// dispatchIncident runs each channel's due steps, then sets when the
// incident is next due.
func (d *Dispatcher) dispatchIncident(ctx context.Context, in *engine.Incident, chains map[string]string) error {
	chain, ok := chains[in.NodeID]
	if !ok {
		if n, err := d.cfg.Store.GetNode(ctx, in.NodeID); err == nil {
			chain = n.ChainProfileID
		}
		chains[in.NodeID] = chain
	}
	var err error
	for _, ch := range d.cfg.Channels {
		if in, err = d.deliverDue(ctx, in, ch, chain); err != nil {
			return err
		}
	}
	if next := d.nextLook(in, d.cfg.Now().UTC()); !next.Equal(in.NotifyAt) {
		_, err = d.record(ctx, in, func(*engine.Incident, time.Time) {})
	}
	return err
}

// deliverDue delivers ch's due events in order, recording each outcome,
// until one fails or nothing is due.
func (d *Dispatcher) deliverDue(ctx context.Context, in *engine.Incident, ch Channel, chain string) (*engine.Incident, error) {
	for ctx.Err() == nil {
		s, ok := d.next(in, ch, d.cfg.Now().UTC())
		if !ok || s.at.After(d.cfg.Now().UTC()) {
			return in, nil
		}
		sent := ch.Notifier.Notify(ctx, Notification{
			DeliveryID: DeliveryID(in.ID, s.event), Event: s.event, Incident: in.Clone(), ChainProfileID: chain,
		})
		if sent != nil && ctx.Err() != nil {
			return in, nil // interrupted by the stop, not refused by the receiver
		}
		var outcome Outcome
		var err error
		in, err = d.record(ctx, in, func(i *engine.Incident, now time.Time) { outcome = d.apply(i, ch, s, sent, now) })
		if err != nil {
			return in, err
		}
		d.observe(in, ch, s, outcome, sent)
		if sent != nil || s.repost {
			return in, nil
		}
	}
	return in, nil
}

// step is what a channel does next for an incident, and from when.
type step struct {
	event  engine.IncidentEvent
	repost bool // the open incident again, not a new event
	at     time.Time
}

// next is the channel's next step for in: its first event not yet done,
// else a re-post while the incident is open.
func (d *Dispatcher) next(in *engine.Incident, ch Channel, now time.Time) (step, bool) {
	var dl engine.Delivery
	if p := in.Delivery(ch.Name); p != nil {
		dl = *p
	}
	for _, e := range engine.IncidentEvents {
		if ch.takes(e) && in.Happened(e) && !dl.Done(e) {
			return step{event: e, at: latest(now, dl.NextAttemptAt)}, true
		}
	}
	if in.Open() && ch.Repost > 0 && ch.takes(engine.IncidentOpened) {
		return step{event: engine.IncidentOpened, repost: true, at: latest(dl.LastSentAt.Add(ch.Repost), dl.NextAttemptAt)}, true
	}
	return step{}, false
}

// nextLook is when in is next due: its soonest channel step, and for an
// open incident the recheck at the latest; zero when nothing is left.
func (d *Dispatcher) nextLook(in *engine.Incident, now time.Time) time.Time {
	var next time.Time
	for _, ch := range d.cfg.Channels {
		if s, ok := d.next(in, ch, now); ok {
			next = earliest(next, s.at)
		}
	}
	if in.Open() {
		next = earliest(next, now.Add(d.cfg.Recheck))
	}
	return next
}

// apply records on i how the step of ch went.
func (d *Dispatcher) apply(i *engine.Incident, ch Channel, s step, sent error, now time.Time) Outcome {
	dl := i.DeliveryOf(ch.Name)
	if sent == nil {
		dl.LastSentAt, dl.Attempts, dl.NextAttemptAt, dl.LastError = now, 0, time.Time{}, ""
		if !s.repost && !dl.Done(s.event) {
			dl.Delivered = append(dl.Delivered, s.event)
			i.Record(now, engine.TransitionNotified, ch.Name+": "+string(s.event))
			if s.event == engine.IncidentOpened && i.NotifiedAt.IsZero() {
				i.NotifiedAt = now
			}
		}
		return Delivered
	}
	dl.LastError = errorText(sent)
	if s.repost {
		// A failed re-post is tried again after the base backoff; it must
		// not use up the attempts of the events still to come.
		dl.NextAttemptAt = now.Add(d.cfg.Backoff)
		return Failed
	}
	dl.Attempts++
	if dl.Attempts >= d.cfg.MaxAttempts {
		if !dl.Done(s.event) {
			dl.DeadLettered = append(dl.DeadLettered, s.event)
			i.Record(now, engine.TransitionDeadLettered,
				fmt.Sprintf("%s: %s given up after %d attempts: %s", ch.Name, s.event, dl.Attempts, dl.LastError))
		}
		dl.Attempts, dl.NextAttemptAt = 0, time.Time{}
		return DeadLettered
	}
	dl.NextAttemptAt = now.Add(d.backoff(dl.Attempts))
	return Failed
}

// backoff is the wait after the n-th failure in a row.
func (d *Dispatcher) backoff(n int) time.Duration {
	wait := d.cfg.Backoff
	for range n - 1 {
		if wait >= d.cfg.MaxBackoff/2 {
			return d.cfg.MaxBackoff
		}
		wait *= 2
	}
	return min(wait, d.cfg.MaxBackoff)
}

// record applies change to in and writes it with when it is next due,
// re-reading and applying again after a concurrent change. The write
// outlives ctx: what was delivered must be recorded.
func (d *Dispatcher) record(ctx context.Context, in *engine.Incident, change func(*engine.Incident, time.Time)) (*engine.Incident, error) {
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), recordTimeout)
	defer cancel()
	for range recordAttempts {
		now := d.cfg.Now().UTC()
		next := in.Clone()
		change(next, now)
		next.NotifyAt = d.nextLook(next, now)
		err := d.cfg.Store.UpdateIncident(wctx, next)
		if err == nil {
			return next, nil
		}
		if !engine.IsCode(err, engine.EConflict) || errors.Is(err, engine.ErrStaleLeader) {
			return in, fmt.Errorf("record notification of incident %s: %w", in.ID, err)
		}
		if in, err = d.cfg.Store.GetIncident(wctx, in.ID); err != nil {
			return in, fmt.Errorf("reload incident: %w", err)
		}
	}
	return in, engine.Errorf(engine.EConflict, "incident %s kept changing while recording its notification", in.ID)
}

func (d *Dispatcher) observe(in *engine.Incident, ch Channel, s step, o Outcome, sent error) {
	if d.cfg.Observe != nil {
		d.cfg.Observe(ch.Name, s.event, o)
	}
	log := d.cfg.Logger.With("incident", in.ID, "node", in.NodeID, "notifier", ch.Name, "event", s.event)
	switch o {
	case Delivered:
		log.Debug("incident notified", "repost", s.repost)
	case Failed:
		log.Info("incident notification failed; will retry", "attempts", in.Delivery(ch.Name).Attempts, "err", errorText(sent))
	case DeadLettered:
		log.Warn("incident notification given up", "err", errorText(sent))
	}
}

// maxErrorText bounds what an incident keeps of a notifier's error.
const maxErrorText = 300

// errorText is err's message, short enough to keep on the incident.
// Notifiers keep URLs and secrets out of their errors.
func errorText(err error) string {
	msg := err.Error()
	if engine.ErrorCode(err) != engine.EInternal {
		msg = engine.ErrorMessage(err) // without the code's prefix
	}
	msg = strings.ToValidUTF8(msg, "?")
	if len(msg) <= maxErrorText {
		return msg
	}
	cut := maxErrorText
	for !utf8.RuneStart(msg[cut]) {
		cut--
	}
	return msg[:cut] + "…"
}

func latest(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// earliest is the sooner of a and b, a zero a counting as none.
func earliest(a, b time.Time) time.Time {
	if a.IsZero() || b.Before(a) {
		return b
	}
	return a
}
