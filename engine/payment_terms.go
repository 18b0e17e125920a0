package engine

import (
	"context"
	"fmt"
	"slices"
	"strings"
)

// purchase is one node bought: what a subscription or a line item names.
type purchase struct {
	ChainProfileID, NodeType, Duration string
}

func (s *Subscription) purchase() purchase {
	return purchase{ChainProfileID: s.ChainProfileID, NodeType: s.NodeType, Duration: s.Duration}
}

func (it PaymentLineItem) purchase() purchase {
	return purchase{ChainProfileID: it.ChainProfileID, NodeType: it.NodeType, Duration: it.Duration}
}

// priceOf sums the current prices of purchases, in euro cents. A purchase
// the catalogue does not offer (any more) is EInvalid.
func priceOf(cat Catalog, items []purchase) (int64, error) {
	var total int64
	for _, it := range items {
		pl, err := cat.Placement(it.ChainProfileID, it.NodeType, it.Duration)
		if err != nil {
			return 0, err
		}
		total += pl.PriceCents
	}
	return total, nil
}

// shortfall says why amount in currency does not pay price, or "" when it
// does: only PaymentCurrency counts (in any letter case), paying more than
// the price is paying, and what costs nothing needs no money.
func shortfall(amount int64, currency string, price int64) string {
	if price == 0 {
		return ""
	}
	if !strings.EqualFold(currency, PaymentCurrency) {
		return fmt.Sprintf("paid in %q: payments are taken in %s only", currency, PaymentCurrency)
	}
	if amount < price {
		return fmt.Sprintf("received %d %s cents; what it pays for costs %d", amount, PaymentCurrency, price)
	}
	return ""
}

// missingInputs names the required inputs the subscription still lacks.
func missingInputs(ctx context.Context, st InputStore, cat Catalog, s *Subscription) ([]string, error) {
	required, err := cat.RequiredInputs(s.ChainProfileID, s.NodeType)
	if err != nil || len(required) == 0 {
		return nil, err
	}
	inputs, err := st.ListInputs(ctx, s.ID)
	if err != nil {
		return nil, fmt.Errorf("read inputs of subscription %s: %w", s.ID, err)
	}
	var missing []string
	for _, name := range required {
		if !slices.ContainsFunc(inputs, func(in *ProvisioningInput) bool { return in.Name == name && in.supplied() }) {
			missing = append(missing, name)
		}
	}
	return missing, nil
}

func (in *ProvisioningInput) supplied() bool { return in.Value != "" || len(in.Ciphertext) > 0 }

// requireInputs is EConflict naming every input the subscriptions lack:
// a payment is linked or marked paid only once they are all supplied, so
// money never pays for a node that cannot be provisioned.
func requireInputs(ctx context.Context, st InputStore, cat Catalog, subs []*Subscription) error {
	var lacking []string
	for _, s := range subs {
		missing, err := missingInputs(ctx, st, cat, s)
		if err != nil {
			return err
		}
		if len(missing) > 0 {
			lacking = append(lacking, fmt.Sprintf("subscription %s lacks %s", s.ID, strings.Join(missing, ", ")))
		}
	}
	if len(lacking) > 0 {
		return Errorf(EConflict, "required inputs are missing (supply them at /api/v1/subscriptions/{id}/inputs first): %s", strings.Join(lacking, "; "))
	}
	return nil
}
