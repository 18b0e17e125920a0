package hetzner_test

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

const apiToken = "hcloud-api-token-0123456789abcdef"

// recorded is one request the fake API received.
type recorded struct {
	Method string
	Path   string
	Query  url.Values
	Body   []byte
	Header http.Header
}

func (r recorded) String() string { return r.Method + " " + r.Path + "?" + r.Query.Encode() }

// fakeServer is a server as the fake keeps it.
type fakeServer struct {
	ID       int64
	Name     string
	Status   string
	Type     string
	Location string
	Labels   map[string]string
	IPv4     string
	Created  time.Time
	// initPolls is how many GETs still report "initializing".
	initPolls int
}

// failure is an error response the fake gives instead of serving a request.
type failure struct {
	status int
	code   string // Hetzner error code; empty: a non-JSON body
	msg    string
	header http.Header
}

// fakeAPI plays the parts of the Hetzner Cloud API the adapter uses, and
// records every request.
type fakeAPI struct {
	t  *testing.T
	ts *httptest.Server

	mu       sync.Mutex
	requests []recorded
	servers  map[int64]*fakeServer
	nextID   int64
	// actionSteps are the statuses a creation action reports: at the POST,
	// then at each GET /actions/{id}; the last one repeats.
	actionSteps []string
	actionSeen  map[int64]int
	actionError map[string]string // the error of a failed action
	// fail serves "METHOD /path" with a failure, once per entry.
	fail map[string][]failure
	// beforeCreate runs when a POST /servers arrives, before it is served.
	beforeCreate func(f *fakeAPI)
	delay        time.Duration
	pageSize     int
}

func newFakeAPI(t *testing.T) *fakeAPI {
	t.Helper()
	f := &fakeAPI{
		t: t, servers: map[int64]*fakeServer{}, nextID: 1,
		actionSteps: []string{"running", "running", "success"},
		actionSeen:  map[int64]int{}, fail: map[string][]failure{}, pageSize: 25,
	}
	f.ts = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.ts.Close)
	return f
}

// addServer stores a server as if created earlier.
func (f *fakeAPI) addServer(s fakeServer) *fakeServer {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.addServerLocked(s)
}

func (f *fakeAPI) addServerLocked(s fakeServer) *fakeServer {
	s.ID = f.nextID
	f.nextID++
	if s.Status == "" {
		s.Status = "running"
	}
	if s.IPv4 == "" {
		s.IPv4 = "203.0.113." + strconv.FormatInt(s.ID, 10)
	}
	if s.Created.IsZero() {
		s.Created = time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC).Add(time.Duration(s.ID) * time.Minute)
	}
	f.servers[s.ID] = &s
	return &s
}

func (f *fakeAPI) failOnce(route string, fl failure) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fail[route] = append(f.fail[route], fl)
}

// calls returns the recorded requests, optionally only those of method.
func (f *fakeAPI) calls(method string) []recorded {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []recorded
	for _, r := range f.requests {
		if method == "" || r.Method == method {
			out = append(out, r)
		}
	}
	return out
}

// labels returns the labels of server id, nil when there is none.
func (f *fakeAPI) labels(id string) map[string]string {
	f.mu.Lock()
	defer f.mu.Unlock()
	n, _ := strconv.ParseInt(id, 10, 64)
	if s, ok := f.servers[n]; ok {
		return maps.Clone(s.Labels)
	}
	return nil
}

func (f *fakeAPI) serverCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.servers)
}

func (f *fakeAPI) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.requests = append(f.requests, recorded{r.Method, r.URL.Path, r.URL.Query(), body, r.Header.Clone()})
	if f.delay > 0 { // a slow server: it answers after delay, unless the client hung up first
		select {
		case <-time.After(f.delay):
		case <-r.Context().Done():
		}
	}
	if r.Header.Get("Authorization") != "Bearer "+apiToken {
		writeError(w, failure{status: 401, code: "unauthorized", msg: "unable to authenticate"})
		return
	}
	route := r.Method + " " + r.URL.Path
	if fls := f.fail[route]; len(fls) > 0 {
		f.fail[route] = fls[1:]
		writeError(w, fls[0])
		return
	}
	f.route(w, r, body)
}

func (f *fakeAPI) route(w http.ResponseWriter, r *http.Request, body []byte) {
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	switch {
	case len(parts) == 2 && parts[0] == "v1" && parts[1] == "servers" && r.Method == http.MethodGet:
		f.listServers(w, r.URL.Query())
	case len(parts) == 2 && parts[0] == "v1" && parts[1] == "servers" && r.Method == http.MethodPost:
		f.createServer(w, body)
	case len(parts) == 3 && parts[1] == "servers":
		f.oneServer(w, r.Method, parts[2])
	case len(parts) == 3 && parts[1] == "actions" && r.Method == http.MethodGet:
		f.getAction(w, parts[2])
	default:
		writeError(w, failure{status: 404, code: "not_found", msg: "no route"})
	}
}

func (f *fakeAPI) listServers(w http.ResponseWriter, q url.Values) {
	var match []*fakeServer
	for _, s := range f.servers {
		if selects(q.Get("label_selector"), s.Labels) {
			match = append(match, s)
		}
	}
	slices.SortFunc(match, func(a, b *fakeServer) int { return int(a.ID - b.ID) })
	page, _ := strconv.Atoi(q.Get("page"))
	page = max(page, 1)
	from, to := min((page-1)*f.pageSize, len(match)), min(page*f.pageSize, len(match))
	var next any
	if to < len(match) {
		next = page + 1
	}
	list := []any{}
	for _, s := range match[from:to] {
		list = append(list, serverJSON(s))
	}
	writeJSON(w, 200, map[string]any{"servers": list, "meta": map[string]any{"pagination": map[string]any{
		"page": page, "per_page": f.pageSize, "next_page": next, "total_entries": len(match),
	}}})
}

// selects evaluates a label selector of "key==value" and "!key" (key
// absent) terms joined by commas.
func selects(selector string, labels map[string]string) bool {
	if selector == "" {
		return true
	}
	for _, term := range strings.Split(selector, ",") {
		if k, absent := strings.CutPrefix(term, "!"); absent {
			if _, ok := labels[k]; ok {
				return false
			}
			continue
		}
		k, v, ok := strings.Cut(term, "==")
		if !ok || labels[k] != v {
			return false
		}
	}
	return true
}

func (f *fakeAPI) createServer(w http.ResponseWriter, body []byte) {
	if f.beforeCreate != nil {
		f.beforeCreate(f)
	}
	var req struct {
		Name       string            `json:"name"`
		ServerType string            `json:"server_type"`
		Location   string            `json:"location"`
		Labels     map[string]string `json:"labels"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		writeError(w, failure{status: 400, code: "json_error", msg: err.Error()})
		return
	}
	for _, s := range f.servers {
		if s.Name == req.Name {
			writeError(w, failure{status: 409, code: "uniqueness_error", msg: "server name is already used"})
			return
		}
	}
	s := f.addServerLocked(fakeServer{Name: req.Name, Status: "initializing", Type: req.ServerType, Location: req.Location, Labels: req.Labels})
	writeJSON(w, 201, map[string]any{
		"server": serverJSON(s), "action": f.actionJSON(s.ID), "root_password": "root-password-never-read",
	})
}

func (f *fakeAPI) oneServer(w http.ResponseWriter, method, idText string) {
	id, _ := strconv.ParseInt(idText, 10, 64)
	s, ok := f.servers[id]
	if !ok {
		writeError(w, failure{status: 404, code: "not_found", msg: "server with ID '" + idText + "' not found"})
		return
	}
	switch method {
	case http.MethodGet:
		if s.initPolls > 0 {
			s.initPolls--
		} else if s.Status == "initializing" {
			s.Status = "running"
		}
		writeJSON(w, 200, map[string]any{"server": serverJSON(s)})
	case http.MethodDelete:
		delete(f.servers, id)
		writeJSON(w, 200, map[string]any{"action": map[string]any{"id": 900 + id, "command": "delete_server", "status": "running"}})
	default:
		writeError(w, failure{status: 405, code: "method_not_allowed", msg: method})
	}
}

func (f *fakeAPI) actionJSON(id int64) map[string]any {
	step := min(f.actionSeen[id], len(f.actionSteps)-1)
	f.actionSeen[id]++
	a := map[string]any{"id": id, "command": "create_server", "status": f.actionSteps[step], "progress": 0}
	if f.actionSteps[step] == "error" {
		a["error"] = f.actionError
	}
	return a
}

func (f *fakeAPI) getAction(w http.ResponseWriter, idText string) {
	id, _ := strconv.ParseInt(idText, 10, 64)
	if _, ok := f.actionSeen[id]; !ok {
		writeError(w, failure{status: 404, code: "not_found", msg: "action not found"})
		return
	}
	writeJSON(w, 200, map[string]any{"action": f.actionJSON(id)})
}

// serverJSON is a server in the shape the Hetzner API documents.
func serverJSON(s *fakeServer) map[string]any {
	return map[string]any{
		"id": s.ID, "name": s.Name, "status": s.Status, "created": s.Created.Format(time.RFC3339),
		"labels": s.Labels,
		"public_net": map[string]any{
			"ipv4": map[string]any{"ip": s.IPv4, "blocked": false},
			"ipv6": map[string]any{"ip": "2001:db8:" + strconv.FormatInt(s.ID, 16) + "::/64", "blocked": false},
		},
		"server_type": map[string]any{"name": s.Type, "cores": 2},
		"datacenter":  map[string]any{"name": s.Location + "-dc1", "location": map[string]any{"name": s.Location}},
		"image":       map[string]any{"name": "ubuntu-24.04"},
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, fl failure) {
	for k, vs := range fl.header {
		w.Header()[k] = vs
	}
	if fl.code == "" {
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(fl.status)
		fmt.Fprint(w, "<html><body>bad gateway</body></html>")
		return
	}
	writeJSON(w, fl.status, map[string]any{"error": map[string]any{"code": fl.code, "message": fl.msg, "details": map[string]any{}}})
}
