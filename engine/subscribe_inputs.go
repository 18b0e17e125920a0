package engine

import (
	"context"
	"encoding/base64"
	"fmt"
)

// Bounds on one submission of provisioning inputs.
const (
	maxInputsPerSubmission = 64
	maxInputNameBytes      = 128
)

// InputValue is one input as a customer submits it: the value of a text or
// proof input, or for a user-provided secret base64 (standard, padded) of a
// sealed box made to the appliance's sealed-box key (see keys.SealedBoxFormat).
type InputValue struct {
	Name, Value string
}

// SubmitInputs stores provisioning inputs of the caller's subscription,
// replacing earlier values of the same names. Every input is validated
// before any is stored, so a bad one stores nothing. Text and proof values
// are checked against the chain profile and kept in plain text; a sealed
// secret must open with the appliance's key, and only its ciphertext is
// kept: the plaintext is zeroed once checked. Errors name the input, never
// its value.
//
// A subscription waiting_for_inputs that now has every required input has
// its payment announced again, which activates it (resumePayment).
//
// Returns ENotFound for a subscription that is missing or somebody else's;
// EConflict unless it is pending_payment, waiting_for_inputs or active with
// its inputs not yet applied; EInvalid for an unknown input, an input the
// subscription's node type does not take, a malformed value, a secret the
// appliance or the chain generates, a box that does not open, or a key that
// does not fit its key type and format (a placeholder, a key file whose
// halves differ); EUnsupported for a secret when no sealed-box key is
// configured; EUnavailable when the inputs are stored but the payment
// waiting for them could not be announced (submitting them again announces
// it).
func (u *Subscriptions) SubmitInputs(ctx context.Context, p *Principal, id string, values []InputValue) ([]*ProvisioningInput, error) {
	s, err := u.Get(ctx, p, id)
	if err != nil {
		return nil, err
	}
	if err := u.acceptsInputs(ctx, s); err != nil {
		return nil, err
	}
	inputs, err := u.prepareInputs(s, values)
	if err != nil {
		return nil, err
	}
	for _, in := range inputs {
		if err := u.cfg.Store.PutInput(ctx, in); err != nil {
			return nil, fmt.Errorf("store input %s of subscription %s: %w", in.Name, s.ID, err)
		}
	}
	if err := u.resumePayment(ctx, s); err != nil {
		return nil, err
	}
	return inputs, nil
}

// resumePayment announces the payment of a subscription waiting for
// inputs again once it has every required one, so the payment consumer
// activates it. Each announcement has an event id of its own: the
// consumer is idempotent, and one id would be a duplicate the second time.
// A failure is EUnavailable: the inputs are stored, and submitting them
// again announces again.
func (u *Subscriptions) resumePayment(ctx context.Context, s *Subscription) error {
	if s.Status != SubscriptionWaitingForInputs || u.cfg.Events == nil {
		return nil
	}
	missing, err := missingInputs(ctx, u.cfg.Store, u.cfg.Catalog, s)
	if err != nil || len(missing) > 0 {
		return err
	}
	e := &PaymentCompletedEvent{EventID: NewID("inputs-supplied"), PaymentID: s.PaymentID, CompletedAt: u.now()}
	if err := u.cfg.Events.EnsureStream(ctx, PaymentStream()); err != nil {
		return Errorf(EUnavailable, "inputs stored, but the payment stream is unavailable: submit them again")
	}
	if err := PublishPaymentCompleted(ctx, u.cfg.Events, SubjectPaymentCompleted, e); err != nil {
		return Errorf(EUnavailable, "inputs stored, but the payment could not be resumed: submit them again")
	}
	return nil
}

// Inputs returns the caller's subscription's inputs ordered by name.
func (u *Subscriptions) Inputs(ctx context.Context, p *Principal, id string) ([]*ProvisioningInput, error) {
	if _, err := u.Get(ctx, p, id); err != nil {
		return nil, err
	}
	return u.cfg.Store.ListInputs(ctx, id)
}

// acceptsInputs reports whether inputs may still change: not once the
// subscription ended or its inputs reached the node.
func (u *Subscriptions) acceptsInputs(ctx context.Context, s *Subscription) error {
	if s.Status != SubscriptionPendingPayment && s.Status != SubscriptionWaitingForInputs && s.Status != SubscriptionActive {
		return Errorf(EConflict, "subscription %s is %s: inputs can no longer change", s.ID, s.Status)
	}
	stored, err := u.cfg.Store.ListInputs(ctx, s.ID)
	if err != nil {
		return fmt.Errorf("read inputs of subscription %s: %w", s.ID, err)
	}
	for _, in := range stored {
		if in.Status == InputApplied {
			return Errorf(EConflict, "the inputs of subscription %s were applied to its node and can no longer change", s.ID)
		}
	}
	return nil
}

// prepareInputs validates every value and returns what to store.
func (u *Subscriptions) prepareInputs(s *Subscription, values []InputValue) ([]*ProvisioningInput, error) {
	if len(values) == 0 || len(values) > maxInputsPerSubmission {
		return nil, Errorf(EInvalid, "inputs must hold 1 to %d inputs", maxInputsPerSubmission)
	}
	seen := make(map[string]bool, len(values))
	inputs := make([]*ProvisioningInput, 0, len(values))
	now := u.now()
	for _, v := range values {
		if v.Name == "" || len(v.Name) > maxInputNameBytes {
			return nil, Errorf(EInvalid, "every input needs a name of at most %d bytes", maxInputNameBytes)
		}
		if seen[v.Name] {
			return nil, Errorf(EInvalid, "input %q is given twice", v.Name)
		}
		seen[v.Name] = true
		in, err := u.prepareInput(s, v)
		if err != nil {
			return nil, err
		}
		in.SubscriptionID, in.Name, in.Status, in.CreatedAt, in.UpdatedAt = s.ID, v.Name, InputPending, now, now
		inputs = append(inputs, in)
	}
	return inputs, nil
}

func (u *Subscriptions) prepareInput(s *Subscription, v InputValue) (*ProvisioningInput, error) {
	rule, err := u.cfg.Catalog.Input(s.ChainProfileID, s.NodeType, v.Name)
	if err != nil {
		return nil, err
	}
	switch {
	case rule.Type == InputSecret && !rule.Supplied:
		return nil, Errorf(EInvalid, "input %q is generated by the appliance or the chain and cannot be supplied", v.Name)
	case rule.Type == InputSecret:
		ct, err := u.checkSealed(v, rule.CheckKey)
		if err != nil {
			return nil, err
		}
		return &ProvisioningInput{Type: InputSecret, Ciphertext: ct}, nil
	}
	if rule.Check != nil {
		if err := rule.Check(v.Value); err != nil {
			return nil, err
		}
	}
	return &ProvisioningInput{Type: rule.Type, Value: v.Value}, nil
}

// checkSealed decodes a sealed secret, proves it opens and that checkKey
// (if any) accepts the key, zeroing the plaintext, and returns the
// ciphertext to store.
func (u *Subscriptions) checkSealed(v InputValue, checkKey func([]byte) error) ([]byte, error) {
	keys := u.cfg.SealedBoxKeys
	if keys == nil {
		return nil, Errorf(EUnsupported, "this appliance has no sealed-box key: secrets cannot be submitted")
	}
	if base64.StdEncoding.DecodedLen(len(v.Value)) > MaxSealedBoxBytes+3 {
		return nil, Errorf(EInvalid, "input %q is longer than a sealed secret may be", v.Name)
	}
	sealed, err := base64.StdEncoding.Strict().DecodeString(v.Value)
	if err != nil {
		return nil, Errorf(EInvalid, "input %q must be base64 (standard, padded) of a sealed box", v.Name)
	}
	plain, err := keys.Open(sealed)
	if err != nil {
		return nil, Errorf(ErrorCode(err), "input %q: %s", v.Name, ErrorMessage(err))
	}
	defer Zero(plain)
	if len(plain) == 0 {
		return nil, Errorf(EInvalid, "input %q is an empty secret", v.Name)
	}
	if checkKey != nil {
		if err := checkKey(plain); err != nil {
			return nil, err
		}
	}
	return sealed, nil
}
