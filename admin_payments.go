package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/hoodcloud/hoodcloud/web"
)

const adminPaymentsUsage = `usage: hoodcloud admin payments COMMAND [flags]

Against a running appliance (admin token in HOODCLOUD_ADMIN_TOKEN):
  dead-letters [--api-url URL] [--status dead|redriven|resolved] [--limit N] [--output text|json]
        payment events the consumer gave up on, newest first, with payload and error
  redrive [--api-url URL] [--output text|json] ID
        process dead letter ID again once its cause is fixed; its incident is resolved
`

// adminPayments runs the payment commands of an operator.
func adminPayments(ctx context.Context, args []string, env func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, adminPaymentsUsage)
		return errUsage
	}
	switch args[0] {
	case "dead-letters":
		return adminDeadLetters(ctx, args[1:], env, stdout, stderr)
	case "redrive":
		return adminRedrive(ctx, args[1:], env, stdout, stderr)
	}
	return configErrorf("admin payments: unknown command %q\n%s", args[0], adminPaymentsUsage)
}

// deadLetterOutput is a dead letter as the appliance answers it.
type deadLetterOutput = web.DeadLetterJSON

// maxShownPayload bounds a payload in text output; json shows it whole.
const maxShownPayload = 300

// describeDeadLetter writes the letter in a few lines of text.
func describeDeadLetter(w io.Writer, l deadLetterOutput) {
	fmt.Fprintf(w, "%s  %s  %d deliveries  last %s", l.ID, l.Status, l.Deliveries, l.LastSeenAt.Format(time.RFC3339))
	if l.EventID != "" {
		fmt.Fprintf(w, "  event %s  payment %s", l.EventID, l.PaymentID)
	}
	if !l.RedrivenAt.IsZero() {
		fmt.Fprintf(w, "  redriven %s by %s", l.RedrivenAt.Format(time.RFC3339), l.RedrivenBy)
	}
	fmt.Fprintf(w, "\n  error:   %s\n", l.Error)
	if l.Payload != nil {
		fmt.Fprintf(w, "  payload: %s\n", shorten(terminalSafe(*l.Payload)))
	} else {
		fmt.Fprintf(w, "  payload (base64): %s\n", shorten(l.PayloadBase64))
	}
}

// terminalSafe is s as it is, or quoted when it holds control characters
// (a newline, an escape sequence) that would garble a terminal.
func terminalSafe(s string) string {
	if strings.ContainsFunc(s, unicode.IsControl) {
		return strconv.Quote(s)
	}
	return s
}

func shorten(s string) string {
	if len(s) <= maxShownPayload {
		return s
	}
	cut := maxShownPayload
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

// outputFlag adds --output to fs.
func outputFlag(fs *flag.FlagSet) *string {
	return fs.String("output", "text", "text or json")
}

// printJSON writes v indented, for --output json.
func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func adminDeadLetters(ctx context.Context, args []string, env func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("admin payments dead-letters", flag.ContinueOnError)
	fs.SetOutput(stderr)
	apiURL := fs.String("api-url", defaultAPIURL, "the appliance's HTTP address")
	status := fs.String("status", "", "only letters in this status: dead, redriven or resolved")
	limit := fs.Int("limit", 0, "at most this many (1 to 1000; default 100)")
	output := outputFlag(fs)
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	if fs.NArg() != 0 {
		return configErrorf("admin payments dead-letters: takes flags only, not %q", fs.Arg(0))
	}
	if err := checkOneOf("output", *output, "text", "json"); err != nil {
		return err
	}
	q := url.Values{}
	if *status != "" {
		q.Set("status", *status)
	}
	if *limit != 0 {
		q.Set("limit", strconv.Itoa(*limit))
	}
	path := "/api/v1/admin/payments/dead-letters"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	var page struct {
		DeadLetters []deadLetterOutput `json:"dead_letters"`
	}
	if err := adminRequest(ctx, env, "admin payments dead-letters", http.MethodGet, *apiURL, path, nil, &page); err != nil {
		return err
	}
	if *output == "json" {
		return printJSON(stdout, page)
	}
	if len(page.DeadLetters) == 0 {
		fmt.Fprintln(stdout, "no dead letters")
	}
	for _, l := range page.DeadLetters {
		describeDeadLetter(stdout, l)
	}
	return nil
}

func adminRedrive(ctx context.Context, args []string, env func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("admin payments redrive", flag.ContinueOnError)
	fs.SetOutput(stderr)
	apiURL := fs.String("api-url", defaultAPIURL, "the appliance's HTTP address")
	output := outputFlag(fs)
	id, err := parseAround(fs, args)
	if err != nil {
		return errUsage
	}
	if id == "" {
		return configErrorf("admin payments redrive: want exactly one dead letter ID")
	}
	if err := checkOneOf("output", *output, "text", "json"); err != nil {
		return err
	}
	var l deadLetterOutput
	path := "/api/v1/admin/payments/dead-letters/" + url.PathEscape(id) + "/redrive"
	if err := adminCall(ctx, env, "admin payments redrive", *apiURL, path, nil, &l); err != nil {
		return err
	}
	if *output == "json" {
		return printJSON(stdout, l)
	}
	fmt.Fprintf(stdout, "dead letter %s redriven: the payment went through and its incident is resolved\n", l.ID)
	return nil
}
