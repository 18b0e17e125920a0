package main

import "testing"

func TestPublicAddressesDefaultToTheBindAddressesUnlessWildcards(t *testing.T) {
	for _, tt := range []struct {
		name                 string
		cfg                  Config
		gatewayBound         string
		wantGateway, wantURL string
	}{
		{"loopback defaults", Config{HTTPAddr: "127.0.0.1:8080"}, "127.0.0.1:8443", "127.0.0.1:8443", "http://127.0.0.1:8080"},
		{"named addresses", Config{HTTPAddr: "10.0.0.5:8080"}, "10.0.0.5:8443", "10.0.0.5:8443", "http://10.0.0.5:8080"},
		{"wildcards name nothing", Config{HTTPAddr: "0.0.0.0:8080"}, "[::]:8443", "", ""},
		{"an empty host is a wildcard", Config{HTTPAddr: ":8080"}, ":8443", "", ""},
		{"tls hosts serve https", Config{HTTPAddr: "10.0.0.5:8443", TLSHosts: stringList{"10.0.0.5"}}, "10.0.0.5:9443", "10.0.0.5:9443", "https://10.0.0.5:8443"},
		{"an acme domain names the api", Config{HTTPAddr: "0.0.0.0:443", TLSDomains: stringList{"cp.example.com"}}, "0.0.0.0:8443", "", "https://cp.example.com:443"},
		{"settings win", Config{HTTPAddr: "0.0.0.0:8080", PublicURL: "https://cp.example.com/", AgentPublicAddr: "gw.example.com:8443"}, "0.0.0.0:8443", "gw.example.com:8443", "https://cp.example.com"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.cfg.agentPublicAddr(tt.gatewayBound); got != tt.wantGateway {
				t.Errorf("agentPublicAddr(%s) = %q, want %q", tt.gatewayBound, got, tt.wantGateway)
			}
			if got := tt.cfg.publicURL(); got != tt.wantURL {
				t.Errorf("publicURL() = %q, want %q", got, tt.wantURL)
			}
		})
	}
}
