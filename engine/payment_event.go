package engine

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// PaymentsStreamName is the durable stream payment.completed is stored on.
const PaymentsStreamName = "PAYMENTS"

// paymentDuplicateWindow is how long JetStream drops a repeated event id.
const paymentDuplicateWindow = 2 * time.Minute

// maxPaymentLineItems bounds the subscriptions one message may create.
const maxPaymentLineItems = 100

// PaymentStream is the stream spec of the payment.completed messages.
func PaymentStream() StreamSpec {
	return StreamSpec{
		Name:            PaymentsStreamName,
		Subjects:        []string{SubjectPaymentCompleted},
		DuplicateWindow: paymentDuplicateWindow,
	}
}

// PaymentCompletedEvent is the payment.completed message: the webhook body and
// what the consumer reads. EventID identifies the notification (retries of
// the same notification carry the same id); PaymentID or ExternalID names
// the payment linked by POST /api/v1/payments; LineItems are the fallback
// when no payment is linked. AmountCents and Currency are what the
// provider received; without them (Currency empty) the amount declared
// when the payment was linked counts, as for mark-paid. What is received
// must be in PaymentCurrency and cover the price of what it pays for, or
// the payment is left underpaid.
type PaymentCompletedEvent struct {
	EventID     string            `json:"event_id"`
	PaymentID   string            `json:"payment_id,omitempty"`
	ExternalID  string            `json:"external_id,omitempty"`
	AmountCents int64             `json:"amount_cents,omitempty"`
	Currency    string            `json:"currency,omitempty"`
	LineItems   []PaymentLineItem `json:"line_items,omitempty"`
	CompletedAt time.Time         `json:"completed_at,omitzero"`
}

// maxCurrencyBytes bounds a reported currency: it is shown and logged.
const maxCurrencyBytes = 8

// PaymentLineItem is one node bought, for a subscription created from the
// payment itself (path 2).
type PaymentLineItem struct {
	ChainProfileID string `json:"chain_profile_id"`
	NodeType       string `json:"node_type"`
	Duration       string `json:"duration"`
	UserID         string `json:"user_id"`
}

// Validate reports the first missing field as EInvalid. It also resolves
// an external id to the payment id Payments.Link gave it, and gives line
// items without either the payment id they are recorded under.
func (e *PaymentCompletedEvent) Validate() error {
	switch {
	case e.EventID == "" || len(e.EventID) > 200:
		return Errorf(EInvalid, "event_id is required (at most 200 characters)")
	case e.PaymentID == "" && e.ExternalID == "" && len(e.LineItems) == 0:
		return Errorf(EInvalid, "payment_id, external_id or line_items is required")
	case len(e.LineItems) > maxPaymentLineItems:
		return Errorf(EInvalid, "at most %d line items", maxPaymentLineItems)
	case e.AmountCents < 0:
		return Errorf(EInvalid, "amount_cents must not be negative")
	case e.AmountCents != 0 && e.Currency == "":
		return Errorf(EInvalid, "currency is required with amount_cents")
	case len(e.Currency) > maxCurrencyBytes || strings.IndexFunc(e.Currency, notLetter) >= 0:
		return Errorf(EInvalid, "currency must be a currency code such as EUR")
	}
	for i, it := range e.LineItems {
		if it.ChainProfileID == "" || it.NodeType == "" || it.Duration == "" || it.UserID == "" {
			return Errorf(EInvalid, "line_items[%d] needs chain_profile_id, node_type, duration and user_id", i)
		}
		if it.UserID != e.LineItems[0].UserID {
			return Errorf(EInvalid, "line_items[%d]: every line item of a payment belongs to the same user_id", i)
		}
	}
	switch {
	case e.PaymentID == "" && e.ExternalID != "":
		e.PaymentID = PaymentIDFor(e.ExternalID)
	case e.PaymentID == "": // line items alone: the payment they make
		e.PaymentID = "pay_" + derivedHex("payment-event", e.EventID)
	}
	return nil
}

// DecodePaymentCompleted parses and validates a payment.completed body;
// every failure is EInvalid.
func DecodePaymentCompleted(data []byte) (*PaymentCompletedEvent, error) {
	var e PaymentCompletedEvent
	if err := json.Unmarshal(data, &e); err != nil {
		return nil, Errorf(EInvalid, "payment.completed is not valid JSON")
	}
	if err := e.Validate(); err != nil {
		return nil, err
	}
	return &e, nil
}

func notLetter(r rune) bool { return r > unicode.MaxASCII || !unicode.IsLetter(r) }

// PaymentIDFor is the payment id of a provider's external id. Deriving it
// lets a webhook that knows only the provider's reference find the payment
// without a lookup index, and makes linking the same reference twice a
// conflict on the id.
func PaymentIDFor(externalID string) string {
	return "pay_" + derivedHex("payment", externalID)
}

// derivedHex is 24 hex digits derived from parts, for ids that must come
// out the same on every retry.
func derivedHex(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		h.Write([]byte(strconv.Itoa(len(p)) + ":" + p))
	}
	return hex.EncodeToString(h.Sum(nil)[:12])
}

// PublishPaymentCompleted stores e on subject with the event id as the
// message id, so a repeat within the duplicate window is stored once.
func PublishPaymentCompleted(ctx context.Context, events Events, subject string, e *PaymentCompletedEvent) error {
	if err := e.Validate(); err != nil {
		return err
	}
	data, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("encode payment.completed: %w", err)
	}
	return events.Publish(ctx, subject, e.EventID, data)
}

// MarkPaid announces that paymentID is paid without a payment provider, for
// staging (hoodcloud admin mark-paid). The event id derives from the
// payment, so marking it twice activates once.
func MarkPaid(ctx context.Context, events Events, paymentID string) error {
	if paymentID == "" {
		return Errorf(EInvalid, "payment id is required")
	}
	if err := events.EnsureStream(ctx, PaymentStream()); err != nil {
		return err
	}
	e := &PaymentCompletedEvent{EventID: "mark-paid:" + paymentID, PaymentID: paymentID, CompletedAt: time.Now().UTC()}
	return PublishPaymentCompleted(ctx, events, SubjectPaymentCompleted, e)
}
