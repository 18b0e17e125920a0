package web

// RoutesForTest lists the registered routes as "METHOD /path" in gin's
// syntax (":id"), for the OpenAPI coverage test.
func (s *Server) RoutesForTest() []string {
	var out []string
	for _, r := range s.router.Routes() {
		out = append(out, r.Method+" "+r.Path)
	}
	return out
}
