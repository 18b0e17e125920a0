package vault

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"time"
)

// DefaultPort is Vault's API port, used when the URL names none.
const DefaultPort = "8200"

// ParseURL reads the Options from a URL of the form
//
//	vault://HOST[:PORT]?role-id-file=PATH&secret-id-file=PATH[&NAME=VALUE...]
//
// PORT defaults to 8200. Its parameters are:
//
//	tls             true (default) for https; false for plain http, meant for a Vault on loopback
//	ca-file         PEM bundle that signs Vault's certificate (default: system roots)
//	namespace       Vault Enterprise or OpenBao namespace
//	mount           KV version 2 mount (default secret)
//	prefix          path inside the KV mount under which secrets live (default: none)
//	transit         Transit mount (default transit)
//	approle         AppRole auth mount (default approle)
//	role-id-file    file holding the AppRole role ID
//	secret-id-file  file holding the AppRole secret ID
//	token-file      file holding a token instead of the AppRole files
//	timeout         per-request timeout as a Go duration (default 30s)
//
// Credentials only ever come from files: the URL must not carry any, and
// errors never repeat it.
func ParseURL(raw string) (Options, error) {
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		return Options{}, errors.New("vault: the URL does not parse")
	case u.Scheme != "vault":
		return Options{}, errors.New("vault: the URL must start with vault://")
	case u.User != nil:
		return Options{}, errors.New("vault: the URL must not carry credentials; use role-id-file and secret-id-file, or token-file")
	case u.Hostname() == "":
		return Options{}, errors.New("vault: the URL names no host")
	case u.Path != "" && u.Path != "/":
		return Options{}, errors.New("vault: the URL must have no path; name mounts with mount= and transit=")
	}
	q := u.Query()
	for name := range q {
		if _, known := urlParams[name]; !known {
			return Options{}, fmt.Errorf("vault: unknown URL parameter %q", name)
		}
	}
	opts, err := paramsToOptions(q)
	if err != nil {
		return Options{}, err
	}
	scheme := "https"
	if tls, err := boolParam(q, "tls", true); err != nil {
		return Options{}, err
	} else if !tls {
		scheme = "http"
	}
	port := u.Port()
	if port == "" {
		port = DefaultPort
	}
	opts.Address = scheme + "://" + net.JoinHostPort(u.Hostname(), port)
	return opts, nil
}

var urlParams = map[string]bool{
	"tls": true, "ca-file": true, "namespace": true, "mount": true, "prefix": true, "transit": true,
	"approle": true, "role-id-file": true, "secret-id-file": true, "token-file": true, "timeout": true,
}

func paramsToOptions(q url.Values) (Options, error) {
	opts := Options{
		CAFile:       q.Get("ca-file"),
		Namespace:    q.Get("namespace"),
		KVMount:      q.Get("mount"),
		KVPrefix:     q.Get("prefix"),
		TransitMount: q.Get("transit"),
		AppRoleMount: q.Get("approle"),
		RoleIDFile:   q.Get("role-id-file"),
		SecretIDFile: q.Get("secret-id-file"),
		TokenFile:    q.Get("token-file"),
	}
	if v := q.Get("timeout"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return Options{}, fmt.Errorf("vault: URL parameter timeout=%q is not a positive duration", v)
		}
		opts.RequestTimeout = d
	}
	return opts, nil
}

func boolParam(q url.Values, name string, fallback bool) (bool, error) {
	if !q.Has(name) {
		return fallback, nil
	}
	v, err := strconv.ParseBool(q.Get(name))
	if err != nil {
		return false, fmt.Errorf("vault: URL parameter %s=%q is not true or false", name, q.Get(name))
	}
	return v, nil
}
