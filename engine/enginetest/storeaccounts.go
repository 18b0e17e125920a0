package enginetest

import (
	"testing"
	"time"

	"github.com/hoodcloud/hoodcloud/engine"
)

func stUser() *engine.User {
	id := engine.NewID("user")
	return &engine.User{
		ID: id, Email: id + "@example.com", PasswordHash: "$argon2id$hash",
		CreatedAt: stAt(0), UpdatedAt: stAt(0),
	}
}

func stAPIKey(userID string, created time.Time) *engine.APIKey {
	id := engine.NewID("key")
	return &engine.APIKey{
		ID: id, UserID: userID, Name: "ci", Prefix: "hc_" + id[4:10],
		Hash: []byte("sha256-" + id), Scopes: []string{engine.ScopeNodesRead, engine.ScopeNodesWrite},
		CreatedAt: created, ExpiresAt: created.Add(90 * 24 * time.Hour),
	}
}

func stSubscription(userID string, status engine.SubscriptionStatus) *engine.Subscription {
	return &engine.Subscription{
		ID: engine.NewID("sub"), UserID: userID, ChainProfileID: "ethereum-holesky",
		NodeType: "full", Duration: "1m", Provider: "local", Region: "eu", InstanceType: "small",
		Status: status, ExpiresAt: stAt(3600), CreatedAt: stAt(0), UpdatedAt: stAt(0),
	}
}

func stPayment(userID string) *engine.Payment {
	return &engine.Payment{
		ID: engine.NewID("pay"), UserID: userID, ExternalID: engine.NewID("ext"),
		AmountCents: 4200, Currency: "EUR", Status: engine.PaymentPending,
		SubscriptionIDs: []string{engine.NewID("sub"), engine.NewID("sub")}, CreatedAt: stAt(0),
	}
}

func testStoreUsers(t *testing.T, s engine.Store, reopen StoreOpener) {
	t.Run("CreateThenGetByIDAndEmail", func(t *testing.T) {
		u := stUser()
		stOK(t, s.CreateUser(t.Context(), u))
		if u.Version != 1 {
			t.Fatalf("Version after create = %d, want 1", u.Version)
		}
		got, err := s.GetUser(t.Context(), u.ID)
		stOK(t, err)
		stSame(t, got, u)
		got, err = s.GetUserByEmail(t.Context(), u.Email)
		stOK(t, err)
		stSame(t, got, u)
	})
	t.Run("UnknownUserIsNotFound", func(t *testing.T) {
		_, err := s.GetUser(t.Context(), "user_missing")
		stCode(t, err, engine.ENotFound)
		_, err = s.GetUserByEmail(t.Context(), "missing@example.com")
		stCode(t, err, engine.ENotFound)
	})
	t.Run("CreateRejectsTakenIDOrEmail", func(t *testing.T) {
		u := stUser()
		stOK(t, s.CreateUser(t.Context(), u))
		sameID := stUser()
		sameID.ID = u.ID
		stCode(t, s.CreateUser(t.Context(), sameID), engine.EConflict)
		sameEmail := stUser()
		sameEmail.Email = u.Email
		stCode(t, s.CreateUser(t.Context(), sameEmail), engine.EConflict)
		_, err := s.GetUser(t.Context(), sameEmail.ID)
		stCode(t, err, engine.ENotFound)
	})
	t.Run("UpdateBumpsVersionAndMovesEmail", func(t *testing.T) {
		u := stUser()
		stOK(t, s.CreateUser(t.Context(), u))
		old := u.Email
		u.Email, u.Admin, u.UpdatedAt = "moved-"+u.Email, true, stAt(60)
		stOK(t, s.UpdateUser(t.Context(), u))
		if u.Version != 2 {
			t.Fatalf("Version after update = %d, want 2", u.Version)
		}
		got, err := s.GetUserByEmail(t.Context(), u.Email)
		stOK(t, err)
		stSame(t, got, u)
		_, err = s.GetUserByEmail(t.Context(), old)
		stCode(t, err, engine.ENotFound)
		reuse := stUser()
		reuse.Email = old
		stOK(t, s.CreateUser(t.Context(), reuse))
	})
	t.Run("UpdateRejectsStaleVersionMissingUserAndTakenEmail", func(t *testing.T) {
		u, other := stUser(), stUser()
		stOK(t, s.CreateUser(t.Context(), u))
		stOK(t, s.CreateUser(t.Context(), other))
		stale := *u
		stOK(t, s.UpdateUser(t.Context(), u))
		stCode(t, s.UpdateUser(t.Context(), &stale), engine.EConflict)
		if stale.Version != 1 {
			t.Fatalf("a failed update changed the argument's Version to %d", stale.Version)
		}
		u.Email = other.Email
		stCode(t, s.UpdateUser(t.Context(), u), engine.EConflict)
		stCode(t, s.UpdateUser(t.Context(), stUser()), engine.ENotFound)
	})
	t.Run("CountUsers", func(t *testing.T) {
		s := openStore(t, reopen)
		n, err := s.CountUsers(t.Context())
		stOK(t, err)
		if n != 0 {
			t.Fatalf("fresh store counts %d users, want 0", n)
		}
		stOK(t, s.CreateUser(t.Context(), stUser()))
		stOK(t, s.CreateUser(t.Context(), stUser()))
		if n, err = s.CountUsers(t.Context()); err != nil || n != 2 {
			t.Fatalf("CountUsers = %d, %v; want 2", n, err)
		}
	})
}

func testStoreAPIKeys(t *testing.T, s engine.Store, _ StoreOpener) {
	newUser := func(t *testing.T) *engine.User {
		u := stUser()
		stOK(t, s.CreateUser(t.Context(), u))
		return u
	}
	t.Run("CreateThenGetByHashAndListOldestFirst", func(t *testing.T) {
		u := newUser(t)
		later, earlier := stAPIKey(u.ID, stAt(20)), stAPIKey(u.ID, stAt(10))
		stOK(t, s.CreateAPIKey(t.Context(), later))
		stOK(t, s.CreateAPIKey(t.Context(), earlier))
		stOK(t, s.CreateAPIKey(t.Context(), stAPIKey(newUser(t).ID, stAt(0))))
		got, err := s.GetAPIKeyByHash(t.Context(), later.Hash)
		stOK(t, err)
		stSame(t, got, later)
		keys, err := s.ListAPIKeys(t.Context(), u.ID)
		stOK(t, err)
		stSame(t, keys, []*engine.APIKey{earlier, later})
	})
	t.Run("CreateRejectsTakenIDOrHashAndUnknownUser", func(t *testing.T) {
		u := newUser(t)
		k := stAPIKey(u.ID, stAt(0))
		stOK(t, s.CreateAPIKey(t.Context(), k))
		sameID := stAPIKey(u.ID, stAt(0))
		sameID.ID = k.ID
		stCode(t, s.CreateAPIKey(t.Context(), sameID), engine.EConflict)
		sameHash := stAPIKey(u.ID, stAt(0))
		sameHash.Hash = k.Hash
		stCode(t, s.CreateAPIKey(t.Context(), sameHash), engine.EConflict)
		stCode(t, s.CreateAPIKey(t.Context(), stAPIKey("user_missing", stAt(0))), engine.ENotFound)
	})
	t.Run("UnknownHashIsNotFoundAndKeylessUserListsNothing", func(t *testing.T) {
		_, err := s.GetAPIKeyByHash(t.Context(), []byte("no such hash"))
		stCode(t, err, engine.ENotFound)
		keys, err := s.ListAPIKeys(t.Context(), newUser(t).ID)
		stOK(t, err)
		stSame(t, keys, []*engine.APIKey{})
	})
	t.Run("RevokeKeepsFirstTimeAndRevokedKeysStillResolve", func(t *testing.T) {
		u := newUser(t)
		k := stAPIKey(u.ID, stAt(0))
		stOK(t, s.CreateAPIKey(t.Context(), k))
		stOK(t, s.RevokeAPIKey(t.Context(), u.ID, k.ID, stAt(100)))
		stOK(t, s.RevokeAPIKey(t.Context(), u.ID, k.ID, stAt(200)))
		got, err := s.GetAPIKeyByHash(t.Context(), k.Hash)
		stOK(t, err)
		if !got.RevokedAt.Equal(stAt(100)) {
			t.Fatalf("RevokedAt = %v, want the first revocation %v", got.RevokedAt, stAt(100))
		}
	})
	t.Run("RevokeRejectsUnknownKeyAndOtherUsersKey", func(t *testing.T) {
		u, other := newUser(t), newUser(t)
		k := stAPIKey(u.ID, stAt(0))
		stOK(t, s.CreateAPIKey(t.Context(), k))
		stCode(t, s.RevokeAPIKey(t.Context(), u.ID, "key_missing", stAt(1)), engine.ENotFound)
		stCode(t, s.RevokeAPIKey(t.Context(), other.ID, k.ID, stAt(1)), engine.ENotFound)
		got, err := s.GetAPIKeyByHash(t.Context(), k.Hash)
		stOK(t, err)
		if !got.RevokedAt.IsZero() {
			t.Fatal("another user revoked the key")
		}
	})
}

func testStoreSubscriptions(t *testing.T, s engine.Store, reopen StoreOpener) {
	t.Run("CreateThenGet", func(t *testing.T) {
		sub := stSubscription("user_a", engine.SubscriptionPendingPayment)
		stOK(t, s.CreateSubscription(t.Context(), sub))
		if sub.Version != 1 {
			t.Fatalf("Version after create = %d, want 1", sub.Version)
		}
		got, err := s.GetSubscription(t.Context(), sub.ID)
		stOK(t, err)
		stSame(t, got, sub)
		_, err = s.GetSubscription(t.Context(), "sub_missing")
		stCode(t, err, engine.ENotFound)
	})
	t.Run("CreateRejectsTakenID", func(t *testing.T) {
		sub := stSubscription("user_b", engine.SubscriptionActive)
		stOK(t, s.CreateSubscription(t.Context(), sub))
		again := stSubscription("user_other", engine.SubscriptionActive)
		again.ID = sub.ID
		stCode(t, s.CreateSubscription(t.Context(), again), engine.EConflict)
	})
	t.Run("OnePendingSubscriptionPerKey", func(t *testing.T) {
		user := engine.NewID("user")
		pending := stSubscription(user, engine.SubscriptionPendingPayment)
		stOK(t, s.CreateSubscription(t.Context(), pending))
		key := engine.SubscriptionKey{UserID: user, ChainProfileID: pending.ChainProfileID, NodeType: pending.NodeType, Duration: pending.Duration}
		got, err := s.FindPendingSubscription(t.Context(), key)
		stOK(t, err)
		stSame(t, got, pending)
		stCode(t, s.CreateSubscription(t.Context(), stSubscription(user, engine.SubscriptionPendingPayment)), engine.EConflict)
		stOK(t, s.CreateSubscription(t.Context(), stSubscription(user, engine.SubscriptionActive)))
		other := key
		other.Duration = "3m"
		_, err = s.FindPendingSubscription(t.Context(), other)
		stCode(t, err, engine.ENotFound)

		pending.Status = engine.SubscriptionActive
		stOK(t, s.UpdateSubscription(t.Context(), pending))
		_, err = s.FindPendingSubscription(t.Context(), key)
		stCode(t, err, engine.ENotFound)
		stOK(t, s.CreateSubscription(t.Context(), stSubscription(user, engine.SubscriptionPendingPayment)))
	})
	t.Run("WaitingForInputsIsPaidNotPending", func(t *testing.T) {
		user := engine.NewID("user")
		pending := stSubscription(user, engine.SubscriptionPendingPayment)
		pending.PaymentID = engine.NewID("pay")
		stOK(t, s.CreateSubscription(t.Context(), pending))
		pending.Status = engine.SubscriptionWaitingForInputs
		stOK(t, s.UpdateSubscription(t.Context(), pending))
		key := engine.SubscriptionKey{UserID: user, ChainProfileID: pending.ChainProfileID, NodeType: pending.NodeType, Duration: pending.Duration}
		_, err := s.FindPendingSubscription(t.Context(), key)
		stCode(t, err, engine.ENotFound)
		stOK(t, s.CreateSubscription(t.Context(), stSubscription(user, engine.SubscriptionPendingPayment)))
		byPayment, err := s.ListSubscriptionsByPayment(t.Context(), pending.PaymentID)
		stOK(t, err)
		stSame(t, byPayment, []*engine.Subscription{pending})
		expiring, err := s.ListSubscriptionsExpiringBefore(t.Context(), stAt(1<<20), 1000)
		stOK(t, err)
		for _, e := range expiring {
			if e.ID == pending.ID {
				t.Fatal("a subscription waiting for inputs expires: its term has not started")
			}
		}
	})
	t.Run("ListByUserNewestFirst", func(t *testing.T) {
		user := engine.NewID("user")
		subs := map[int]*engine.Subscription{}
		for _, at := range []int{20, 0, 40} { // stored out of order
			sub := stSubscription(user, engine.SubscriptionActive)
			sub.CreatedAt = stAt(at)
			stOK(t, s.CreateSubscription(t.Context(), sub))
			subs[at] = sub
		}
		want := []*engine.Subscription{subs[40], subs[20], subs[0]}
		stOK(t, s.CreateSubscription(t.Context(), stSubscription(engine.NewID("user"), engine.SubscriptionActive)))
		got, err := s.ListSubscriptions(t.Context(), user)
		stOK(t, err)
		stSame(t, got, want)
	})
	t.Run("ListByPaymentFollowsUpdates", func(t *testing.T) {
		payment := engine.NewID("pay")
		a, b, c := stSubscription("user_p", engine.SubscriptionPendingPayment), stSubscription("user_q", engine.SubscriptionActive), stSubscription("user_r", engine.SubscriptionActive)
		for _, sub := range []*engine.Subscription{a, b, c} {
			stOK(t, s.CreateSubscription(t.Context(), sub))
		}
		a.PaymentID, b.PaymentID = payment, payment
		stOK(t, s.UpdateSubscription(t.Context(), a))
		stOK(t, s.UpdateSubscription(t.Context(), b))
		got, err := s.ListSubscriptionsByPayment(t.Context(), payment)
		stOK(t, err)
		stSameIDs(t, stSorted(stIDs(got)), stSorted([]string{a.ID, b.ID}))
		b.PaymentID = ""
		stOK(t, s.UpdateSubscription(t.Context(), b))
		got, err = s.ListSubscriptionsByPayment(t.Context(), payment)
		stOK(t, err)
		stSameIDs(t, stIDs(got), []string{a.ID})
	})
	t.Run("ListExpiringBeforeOnlyActiveAndAtMostLimit", func(t *testing.T) {
		s := openStore(t, reopen)
		var due []string
		for i, tc := range []struct {
			status  engine.SubscriptionStatus
			expires int
			due     bool
		}{
			{engine.SubscriptionActive, 10, true},
			{engine.SubscriptionActive, 20, true},
			{engine.SubscriptionActive, 99, true},
			{engine.SubscriptionActive, 100, false}, // not before
			{engine.SubscriptionActive, 500, false},
			{engine.SubscriptionPendingPayment, 10, false},
			{engine.SubscriptionExpired, 10, false},
			{engine.SubscriptionCancelled, 10, false},
		} {
			sub := stSubscription(engine.NewID("user"), tc.status)
			sub.ExpiresAt = stAt(tc.expires)
			sub.CreatedAt = stAt(i)
			stOK(t, s.CreateSubscription(t.Context(), sub))
			if tc.due {
				due = append(due, sub.ID)
			}
		}
		got, err := s.ListSubscriptionsExpiringBefore(t.Context(), stAt(100), 10)
		stOK(t, err)
		stSameIDs(t, stSorted(stIDs(got)), stSorted(due))
		got, err = s.ListSubscriptionsExpiringBefore(t.Context(), stAt(100), 2)
		stOK(t, err)
		if len(got) != 2 {
			t.Fatalf("limit 2 returned %d subscriptions", len(got))
		}
		for _, sub := range got {
			if sub.Status != engine.SubscriptionActive || !sub.ExpiresAt.Before(stAt(100)) {
				t.Fatalf("listed %+v, which is not due", sub)
			}
		}
	})
	t.Run("UpdateRejectsStaleVersionAndMissing", func(t *testing.T) {
		sub := stSubscription("user_s", engine.SubscriptionPendingPayment)
		stOK(t, s.CreateSubscription(t.Context(), sub))
		stale := *sub
		sub.Status, sub.ExpiresAt = engine.SubscriptionActive, stAt(7200)
		stOK(t, s.UpdateSubscription(t.Context(), sub))
		if sub.Version != 2 {
			t.Fatalf("Version after update = %d, want 2", sub.Version)
		}
		stale.Status = engine.SubscriptionCancelled
		stCode(t, s.UpdateSubscription(t.Context(), &stale), engine.EConflict)
		if stale.Version != 1 {
			t.Fatalf("a failed update changed the argument's Version to %d", stale.Version)
		}
		got, err := s.GetSubscription(t.Context(), sub.ID)
		stOK(t, err)
		stSame(t, got, sub)
		stCode(t, s.UpdateSubscription(t.Context(), stSubscription("user_s", engine.SubscriptionActive)), engine.ENotFound)
	})
	t.Run("RacingUpdatersWithSameVersionExactlyOneWins", func(t *testing.T) {
		sub := stSubscription("user_race", engine.SubscriptionPendingPayment)
		stOK(t, s.CreateSubscription(t.Context(), sub))
		const writers = 8
		errs := stRace(writers, func(i int) error {
			mine := *sub
			mine.Region = string(rune('a' + i))
			return s.UpdateSubscription(t.Context(), &mine)
		})
		stOneWinner(t, errs, engine.EConflict)
		got, err := s.GetSubscription(t.Context(), sub.ID)
		stOK(t, err)
		if got.Version != 2 || got.Region != string(rune('a'+stWinner(errs))) {
			t.Fatalf("stored Version %d, Region %q; want 2 and the winner's write", got.Version, got.Region)
		}
	})
}

// stWinner returns the index of the nil error.
func stWinner(errs []error) int {
	for i, err := range errs {
		if err == nil {
			return i
		}
	}
	return -1
}

func testStorePayments(t *testing.T, s engine.Store, _ StoreOpener) {
	t.Run("CreateThenGet", func(t *testing.T) {
		p := stPayment("user_a")
		stOK(t, s.CreatePayment(t.Context(), p))
		if p.Version != 1 {
			t.Fatalf("Version after create = %d, want 1", p.Version)
		}
		got, err := s.GetPayment(t.Context(), p.ID)
		stOK(t, err)
		stSame(t, got, p)
		_, err = s.GetPayment(t.Context(), "pay_missing")
		stCode(t, err, engine.ENotFound)
	})
	t.Run("CreateRejectsTakenIDOrExternalID", func(t *testing.T) {
		p := stPayment("user_b")
		stOK(t, s.CreatePayment(t.Context(), p))
		sameID := stPayment("user_b")
		sameID.ID = p.ID
		stCode(t, s.CreatePayment(t.Context(), sameID), engine.EConflict)
		sameExt := stPayment("user_b")
		sameExt.ExternalID = p.ExternalID
		stCode(t, s.CreatePayment(t.Context(), sameExt), engine.EConflict)
	})
	t.Run("EmptyExternalIDIsNotUnique", func(t *testing.T) {
		for range 2 {
			p := stPayment("user_c")
			p.ExternalID = ""
			stOK(t, s.CreatePayment(t.Context(), p))
		}
	})
	t.Run("UpdateBumpsVersionAndRejectsStaleOrMissing", func(t *testing.T) {
		p := stPayment("user_d")
		stOK(t, s.CreatePayment(t.Context(), p))
		stale := *p
		p.Status, p.CompletedAt = engine.PaymentCompleted, stAt(30)
		p.SubscriptionIDs = append(p.SubscriptionIDs, "sub_extra")
		p.StatusReason, p.ActivatedIDs = "a reason", []string{p.SubscriptionIDs[0]}
		stOK(t, s.UpdatePayment(t.Context(), p))
		if p.Version != 2 {
			t.Fatalf("Version after update = %d, want 2", p.Version)
		}
		got, err := s.GetPayment(t.Context(), p.ID)
		stOK(t, err)
		stSame(t, got, p)
		stCode(t, s.UpdatePayment(t.Context(), &stale), engine.EConflict)
		stCode(t, s.UpdatePayment(t.Context(), stPayment("user_d")), engine.ENotFound)
	})
}

func testStorePaymentInbox(t *testing.T, s engine.Store, _ StoreOpener) {
	t.Run("RecordThenGet", func(t *testing.T) {
		e := &engine.PaymentEvent{EventID: engine.NewID("evt"), PaymentID: "pay_a", ReceivedAt: stAt(0)}
		stOK(t, s.RecordPaymentEvent(t.Context(), e))
		got, err := s.GetPaymentEvent(t.Context(), e.EventID)
		stOK(t, err)
		stSame(t, got, e)
		_, err = s.GetPaymentEvent(t.Context(), "evt_missing")
		stCode(t, err, engine.ENotFound)
	})
	t.Run("DuplicateEventConflictsAndLeavesStoredEntry", func(t *testing.T) {
		e := &engine.PaymentEvent{EventID: engine.NewID("evt"), PaymentID: "pay_b", ReceivedAt: stAt(0)}
		stOK(t, s.RecordPaymentEvent(t.Context(), e))
		stOK(t, s.MarkPaymentEventProcessed(t.Context(), e.EventID, stAt(5)))
		again := &engine.PaymentEvent{EventID: e.EventID, PaymentID: "pay_other", ReceivedAt: stAt(9)}
		stCode(t, s.RecordPaymentEvent(t.Context(), again), engine.EConflict)
		got, err := s.GetPaymentEvent(t.Context(), e.EventID)
		stOK(t, err)
		e.ProcessedAt = stAt(5)
		stSame(t, got, e)
	})
	t.Run("MarkProcessedRejectsUnknownEvent", func(t *testing.T) {
		stCode(t, s.MarkPaymentEventProcessed(t.Context(), "evt_missing", stAt(1)), engine.ENotFound)
	})
}

func testStoreChainProfileRefs(t *testing.T, s engine.Store, _ StoreOpener) {
	ref := func(id, version string) *engine.ChainProfileRef {
		return &engine.ChainProfileRef{ID: id, Version: version, Checksum: "sha-" + version, Source: "assets", UpdatedAt: stAt(0)}
	}
	t.Run("PutReplacesAndListIsOrderedByID", func(t *testing.T) {
		got, err := s.ListChainProfileRefs(t.Context())
		stOK(t, err)
		stSame(t, got, []*engine.ChainProfileRef{})
		b, a, a2 := ref("solana-mainnet", "1"), ref("ethereum-holesky", "1"), ref("ethereum-holesky", "2")
		for _, r := range []*engine.ChainProfileRef{b, a, a2} {
			stOK(t, s.PutChainProfileRef(t.Context(), r))
		}
		one, err := s.GetChainProfileRef(t.Context(), a.ID)
		stOK(t, err)
		stSame(t, one, a2)
		got, err = s.ListChainProfileRefs(t.Context())
		stOK(t, err)
		stSame(t, got, []*engine.ChainProfileRef{a2, b})
	})
	t.Run("UnknownRefIsNotFound", func(t *testing.T) {
		_, err := s.GetChainProfileRef(t.Context(), "missing-chain")
		stCode(t, err, engine.ENotFound)
	})
}
