package profile_test

import (
	"testing"
	"time"

	"github.com/hoodcloud/hoodcloud/engine"
)

// TestCatalogAnswersWhatIsNotOfferedAsInvalid: every question about
// something no profile offers is EInvalid, whoever asks.
func TestCatalogAnswersWhatIsNotOfferedAsInvalid(t *testing.T) {
	c := mustLoad(t, defaults(t))
	from := time.Date(2026, 1, 31, 0, 0, 0, 0, time.UTC)
	for name, err := range map[string]error{
		"unknown profile":   second(c.Placement("nope", "full", "1m")),
		"unknown node type": second(c.Placement("alpha", "archive", "1m")),
		"unknown duration":  second(c.Placement("alpha", "full", "7y")),
		"input of unknown":  second(c.Input("nope", "full", "fee_recipient")),
		"unknown input":     second(c.Input("alpha", "full", "nope")),
		"bad duration":      second(c.Expiry("soon", from)),
	} {
		if !engine.IsCode(err, engine.EInvalid) {
			t.Errorf("%s: got %v, want EInvalid", name, err)
		}
	}
}

func TestCatalogPlacesAndDates(t *testing.T) {
	c := mustLoad(t, defaults(t))
	pl, err := c.Placement("alpha", "full", "1m")
	if err != nil || pl.Provider == "" || pl.Region == "" || pl.InstanceType == "" {
		t.Fatalf("placement = %+v, %v; want a whole placement", pl, err)
	}
	rule, err := c.Input("alpha", "full", "fee_recipient")
	if err != nil || rule.Type == "" || rule.Check == nil {
		t.Fatalf("input = %+v, %v; want its rule", rule, err)
	}
	exp, err := c.Expiry("1m", time.Date(2026, 1, 15, 0, 0, 0, 0, time.UTC))
	if err != nil || !exp.Equal(time.Date(2026, 2, 15, 0, 0, 0, 0, time.UTC)) {
		t.Fatalf("expiry = %v, %v; want a calendar month later", exp, err)
	}
}

func second[T any](_ T, err error) error { return err }

func TestCatalogPricesInEuroCentsAndNamesRequiredInputs(t *testing.T) {
	c := mustLoad(t, defaults(t))
	if pl, err := c.Placement("alpha", "full", "12m"); err != nil || pl.PriceCents != 49900 {
		t.Fatalf("placement = %+v, %v; want the profile's price, 49900 euro cents", pl, err)
	}
	if pl, err := c.Placement("alpha", "full", "1m"); err != nil || pl.PriceCents != 0 {
		t.Fatalf("placement = %+v, %v; want 0 where the profile sets no price", pl, err)
	}
	// fee_recipient is required and the customer's; node_key and the
	// legacy key are generated, so nobody is asked for them.
	if got, err := c.RequiredInputs("alpha", "full"); err != nil || len(got) != 1 || got[0] != "fee_recipient" {
		t.Fatalf("required inputs = %v, %v; want [fee_recipient]", got, err)
	}
	for name, err := range map[string]error{
		"unknown profile":   second(c.RequiredInputs("nope", "full")),
		"unknown node type": second(c.RequiredInputs("alpha", "archive")),
	} {
		if !engine.IsCode(err, engine.EInvalid) {
			t.Errorf("%s: got %v, want EInvalid", name, err)
		}
	}
}
