package engine

import (
	"context"
	"time"
)

// InputType is the kind of a provisioning input.
type InputType string

const (
	InputText   InputType = "text"
	InputProof  InputType = "proof"
	InputSecret InputType = "secret"
)

// InputStatus tells whether an input reached the node.
type InputStatus string

const (
	InputPending InputStatus = "pending"
	InputApplied InputStatus = "applied"
)

// ProvisioningInput is what a customer supplied for a subscription: text and
// proofs in plain text, secrets as sealed-box ciphertext only.
type ProvisioningInput struct {
	SubscriptionID string
	Name           string
	Type           InputType
	Value          string // text and proof only
	Ciphertext     []byte // secrets only
	Status         InputStatus
	CreatedAt      time.Time
	UpdatedAt      time.Time
}

// InputStore keeps provisioning inputs. Safe for concurrent use.
type InputStore interface {
	// PutInput creates or replaces the input (SubscriptionID, Name).
	PutInput(ctx context.Context, in *ProvisioningInput) error
	// ListInputs returns the subscription's inputs ordered by name.
	ListInputs(ctx context.Context, subscriptionID string) ([]*ProvisioningInput, error)
	// MarkInputsApplied sets every input of the subscription to applied.
	MarkInputsApplied(ctx context.Context, subscriptionID string, at time.Time) error
}
