package bolt

import (
	"cmp"
	"context"
	"slices"
	"strings"
	"time"

	"go.etcd.io/bbolt"

	"github.com/hoodcloud/hoodcloud/engine"
)

// The incident pipeline's indexes: every incident newest first, by state
// newest first, and those due for notification soonest first.
func incidentPipelineIndexes(i *engine.Incident) []index {
	newest := newestFirst(i.OpenedAt)
	ix := []index{
		{bucket: bIncByTime, key: key(newest, i.ID)},
		{bucket: bIncByState, key: key(string(incidentState(i)), newest, i.ID)},
	}
	if !i.NotifyAt.IsZero() {
		ix = append(ix, index{bucket: bIncToNotify, key: key(timeKey(i.NotifyAt), i.ID)})
	}
	return ix
}

func incidentState(i *engine.Incident) engine.IncidentState {
	if i.Open() {
		return engine.IncidentsOpen
	}
	return engine.IncidentsResolved
}

// keepTransitions keeps the stored history and appends only what is new.
func keepTransitions(stored, next *engine.Incident) {
	var added []engine.IncidentTransition
	if len(next.Transitions) > len(stored.Transitions) {
		added = next.Transitions[len(stored.Transitions):]
	}
	next.Transitions = append(slices.Clip(stored.Transitions), added...)
}

func (s *Store) QueryIncidents(ctx context.Context, q engine.IncidentQuery) (is []*engine.Incident, err error) {
	if err := checkIncidentState(q.State); err != nil {
		return nil, err
	}
	err = s.view(ctx, func(tx *bbolt.Tx) error {
		after, err := incidentCursor(tx, q.After)
		if err != nil {
			return err
		}
		if q.OwnerID != "" {
			is, err = ownersIncidents(tx, q, after)
			return err
		}
		bucket, within := bIncByTime, []byte(nil)
		if q.State != engine.IncidentsAny {
			bucket, within = bIncByState, prefix(string(q.State))
		}
		is, err = incidents.list(tx, bucket, within, after, q.Limit)
		return err
	})
	return is, err
}

func checkIncidentState(st engine.IncidentState) error {
	switch st {
	case engine.IncidentsAny, engine.IncidentsOpen, engine.IncidentsResolved:
		return nil
	}
	return engine.Errorf(engine.EInvalid, "incident state must be open or resolved, not %q", st)
}

// incidentCursor is where the page after the incident id starts in the
// time-ordered indexes; nil from the newest.
func incidentCursor(tx *bbolt.Tx, id string) ([]byte, error) {
	if id == "" {
		return nil, nil
	}
	in, err := incidents.get(tx, key(id))
	if engine.IsCode(err, engine.ENotFound) {
		return nil, engine.Errorf(engine.EInvalid, "the cursor names no incident")
	}
	if err != nil {
		return nil, err
	}
	return key(newestFirst(in.OpenedAt), in.ID), nil
}

// ownersIncidents merges the pages of each of the owner's nodes: a node's
// index is in the query's order already.
func ownersIncidents(tx *bbolt.Tx, q engine.IncidentQuery, after []byte) ([]*engine.Incident, error) {
	var out []*engine.Incident
	var err error
	scan(tx.Bucket(bNodesByOwner), prefix(q.OwnerID), nil, func(_, nodeID []byte) bool {
		n := 0
		scan(tx.Bucket(bIncByNode), prefix(string(nodeID)), after, func(_, id []byte) bool {
			var in *engine.Incident
			if in, err = incidents.get(tx, id); err != nil {
				return false
			}
			if q.State == engine.IncidentsAny || incidentState(in) == q.State {
				out, n = append(out, in), n+1
			}
			return q.Limit <= 0 || n < q.Limit
		})
		return err == nil
	})
	slices.SortFunc(out, func(a, b *engine.Incident) int {
		return cmp.Or(cmp.Compare(b.OpenedAt.UnixMicro(), a.OpenedAt.UnixMicro()), strings.Compare(a.ID, b.ID))
	})
	if q.Limit > 0 && len(out) > q.Limit {
		out = out[:q.Limit]
	}
	return out, err
}

func (s *Store) ListIncidentsToNotify(ctx context.Context, t time.Time, limit int) (is []*engine.Incident, err error) {
	err = s.view(ctx, func(tx *bbolt.Tx) error {
		until := []byte(timeKey(t.Add(time.Microsecond)))
		scanRange(tx.Bucket(bIncToNotify), []byte{}, until, func(_, id []byte) bool {
			var in *engine.Incident
			if in, err = incidents.get(tx, id); err != nil {
				return false
			}
			is = append(is, in)
			return limit <= 0 || len(is) < limit
		})
		return err
	})
	return is, err
}

// indexIncidentPipeline brings incidents of a file written before the
// pipeline into it, once: it indexes them, starts their history with what
// is known, and makes the open ones due for notification.
func indexIncidentPipeline(tx *bbolt.Tx) error {
	if k, _ := tx.Bucket(bIncByTime).Cursor().First(); k != nil {
		return nil
	}
	for _, id := range keysUnder(tx.Bucket(bIncidents), nil) {
		if err := incidents.change(tx, id, startPipeline); err != nil {
			return err
		}
	}
	return nil
}

func startPipeline(in *engine.Incident) error {
	if len(in.Transitions) == 0 {
		in.Record(in.OpenedAt, engine.TransitionOpened, in.Summary)
		if !in.Open() {
			in.Record(in.ResolvedAt, engine.TransitionResolved, "")
		}
	}
	if in.Open() && in.NotifyAt.IsZero() {
		in.NotifyAt = in.OpenedAt
	}
	return nil
}
