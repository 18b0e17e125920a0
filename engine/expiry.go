package engine

import (
	"context"
	"errors"
	"time"
)

// ExpireSubscriptions ends the active subscriptions whose time is up before
// now, at most limit per call: each becomes expired and its node, if it has
// one, is terminated. It returns how many expired. A subscription whose
// node cannot be handed to terminate stays active, so the next run retries
// it; the others go on.
func ExpireSubscriptions(ctx context.Context, subs SubscriptionStore, nodes NodeStore, wf Workflows, now time.Time, limit int) (int, error) {
	due, err := subs.ListSubscriptionsExpiringBefore(ctx, now, limit)
	if err != nil {
		return 0, err
	}
	var errs []error
	n := 0
	for _, s := range due {
		err := expire(ctx, subs, nodes, wf, s, now)
		if errors.Is(err, ErrStaleLeader) {
			return n, err // deposed: the new leader takes over the rest
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		n++
	}
	return n, errors.Join(errs...)
}

func expire(ctx context.Context, subs SubscriptionStore, nodes NodeStore, wf Workflows, s *Subscription, now time.Time) error {
	node, err := nodes.GetNodeBySubscription(ctx, s.ID)
	switch {
	case err == nil:
		// Terminate first: a subscription marked expired is never listed again.
		if err := wf.StartTerminate(ctx, node.ID, "subscription expired"); err != nil {
			return err
		}
	case !IsCode(err, ENotFound):
		return err
	}
	s.Status = SubscriptionExpired
	s.UpdatedAt = now
	err = subs.UpdateSubscription(ctx, s)
	if IsCode(err, EConflict) && !errors.Is(err, ErrStaleLeader) {
		return nil // a stale version: another writer (cancel) got there first
	}
	return err
}
