// Package post sends a notification over HTTP the way every notifier of
// ours does: no URL in any error (it may hold credentials), and a short
// excerpt of a refusal's answer.
package post

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/hoodcloud/hoodcloud/engine"
)

// Do sends req with client and wants a 2xx answer. receiver names the far
// end in errors ("alertmanager"); answerBytes bounds what of a refusal is
// kept.
func Do(client *http.Client, req *http.Request, receiver string, answerBytes int64) error {
	resp, err := client.Do(req)
	if err != nil {
		return engine.Errorf(engine.EUnavailable, "post to %s: %v", receiver, WithoutURL(err))
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(io.LimitReader(resp.Body, answerBytes))
	if resp.StatusCode/100 != 2 {
		return engine.Errorf(engine.EUnavailable, "%s answered %d%s", receiver, resp.StatusCode, explained(answer))
	}
	return nil
}

// WithoutURL drops the URL net/http puts in its errors.
func WithoutURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return fmt.Errorf("%s", ue.Err)
	}
	return err
}

// explained is ": <the answer's text>", or nothing for an empty answer.
func explained(answer []byte) string {
	if text := strings.TrimSpace(strings.ToValidUTF8(string(answer), "?")); text != "" {
		return ": " + text
	}
	return ""
}
