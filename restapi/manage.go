package restapi

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/tusker-ha/tusker/config"
	"github.com/tusker-ha/tusker/ha"
)

// Management endpoints. The handlers below parse and check the request the way Patroni's api.py
// does, with its status codes and messages, and hand what passes to Config.Manager, whose Result
// they write unchanged. Unlike the health checks they may block (a switchover waits for the new
// primary), so they extend the connection's deadlines before calling the Manager and pass it the
// request's context, which ends when the client goes away.

const (
	// maxBodyBytes limits a management request body; Patroni's bodies are a few hundred bytes.
	maxBodyBytes = 64 << 10
	// managementTimeout is how long a management request may take once its body is read: a
	// switchover waits up to 2*max(10 s, loop_wait) for the new primary.
	managementTimeout = 60 * time.Second
)

// Messages of the body checks shared by several endpoints.
const (
	msgInvalidJSON    = "Invalid JSON"
	msgLengthRequired = "Content-Length is required"
	msgBodyTooLarge   = "Request body too large"
	msgCannotRead     = "Cannot read the request body"
)

func (s *Server) serveManagement(w http.ResponseWriter, r *http.Request, seg string) {
	m := management[seg]
	if !strings.Contains(" "+m.methods+" ", " "+r.Method+" ") {
		writeText(w, r, http.StatusMethodNotAllowed, "method not allowed", m.allow)
		return
	}
	mgr := s.cfg.Manager
	if mgr == nil {
		writeText(w, r, http.StatusNotImplemented, "not implemented yet", m.allow)
		return
	}
	if r.Method == http.MethodOptions {
		writeMessage(w, r, http.StatusOK, "", m.allow)
		return
	}
	read := r.Method == http.MethodGet || r.Method == http.MethodHead
	if (!read || s.cfg.ProtectReads) && !s.checkAccess(w, r, seg, read) {
		return
	}
	switch seg {
	case "switchover":
		if r.Method == http.MethodDelete {
			s.call(w, r, "cancel switchover", func() ha.Result { return mgr.CancelSwitchover(r.Context()) })
		} else {
			s.postSwitchover(w, r, mgr, false)
		}
	case "failover":
		s.postSwitchover(w, r, mgr, true)
	case "restart":
		if r.Method == http.MethodDelete {
			s.call(w, r, "cancel restart", func() ha.Result { return mgr.CancelRestart(r.Context()) })
		} else {
			s.postRestart(w, r, mgr)
		}
	case "reload":
		s.call(w, r, "reload", func() ha.Result { return mgr.Reload(r.Context()) })
	case "reinitialize":
		s.postReinitialize(w, r, mgr)
	case "config":
		s.serveConfig(w, r, mgr)
	case "failsafe":
		if r.Method == http.MethodPost {
			s.postFailsafe(w, r, mgr)
			return
		}
		members, ok := mgr.FailsafeMembers()
		if !ok {
			writeMessage(w, r, http.StatusBadGateway, "Failsafe mode is not enabled", nil)
			return
		}
		if members == nil {
			members = map[string]string{}
		}
		b, err := marshal(members)
		if err != nil { // cannot happen for a map of strings
			writeMessage(w, r, http.StatusInternalServerError, err.Error(), nil)
			return
		}
		writeJSONBody(w, r, http.StatusOK, b)
	}
}

// call runs a Manager method that takes no body and writes its Result.
func (s *Server) call(w http.ResponseWriter, r *http.Request, what string, f func() ha.Result) {
	s.extendDeadlines(w)
	res := f()
	s.logResult(r, what, res)
	writeResult(w, r, res, nil)
}

// postSwitchover answers POST /switchover and, with failover, POST /failover: the body is read,
// checked as Patroni checks it, and what passes is handed to the Manager.
func (s *Server) postSwitchover(w http.ResponseWriter, r *http.Request, mgr ha.Manager, failover bool) {
	action := "switchover"
	if failover {
		action = "failover"
	}
	body, ok := readSwitchoverBody(w, r)
	if !ok {
		return
	}
	paused := s.paused()
	at, code, msg := s.checkSwitchover(body, action, failover, paused)
	if msg != "" {
		writeMessage(w, r, code, msg, nil)
		return
	}
	if failover && body.leader != "" {
		failover = false // a failover from a named leader is a switchover
	}

	leader, candidate := body.leader, body.candidate
	req := ha.SwitchoverRequest{Leader: leader, Candidate: candidate, At: at, Failover: failover}
	s.log.Info("received "+action+" request", "leader", leader, "candidate", candidate,
		"scheduled_at", at, "remote", r.RemoteAddr)
	s.extendDeadlines(w)
	res := mgr.Switchover(r.Context(), req)
	s.logResult(r, action, res)
	writeResult(w, r, res, nil)
}

// switchoverBody is a switchover or failover request body whose fields have the right types;
// whether they make sense together is checkSwitchover's.
type switchoverBody struct {
	leader, candidate string
	rawAt             json.RawMessage // scheduled_at as sent
	scheduled         bool            // scheduled_at is set and not falsy
}

// readSwitchoverBody reads and decodes the body of POST /switchover and /failover, rejecting what
// Patroni rejects before it looks at the values. ok is false when the answer has been written.
func readSwitchoverBody(w http.ResponseWriter, r *http.Request) (b switchoverBody, ok bool) {
	body, ok := readBody(w, r, true)
	if !ok {
		return b, false
	}
	obj, err := decodeObject(body)
	if err != nil || len(obj) == 0 {
		writeMessage(w, r, http.StatusBadRequest, msgInvalidJSON, nil)
		return b, false
	}
	if bad := obj.unknownKey("leader", "candidate", "member", "scheduled_at"); bad != "" {
		writeMessage(w, r, http.StatusBadRequest, bad, nil)
		return b, false
	}
	leader, okL := obj.str("leader")
	candidate, okC := obj.str("candidate")
	okM := true
	if candidate == "" && okC {
		candidate, okM = obj.str("member") // Patroni: candidate or member
	}
	switch {
	case !okL:
		writeMessage(w, r, http.StatusBadRequest, "leader should be a string", nil)
		return b, false
	case !okC:
		writeMessage(w, r, http.StatusBadRequest, "candidate should be a string", nil)
		return b, false
	case !okM:
		writeMessage(w, r, http.StatusBadRequest, "member should be a string", nil)
		return b, false
	}
	rawAt, scheduled := obj.get("scheduled_at")
	scheduled = scheduled && !falsy(rawAt)
	return switchoverBody{leader: leader, candidate: candidate, rawAt: rawAt, scheduled: scheduled}, true
}

// checkSwitchover runs Patroni's do_POST_failover checks, check for check and in its order, on a
// request (failover as the endpoint says, before a named leader turns it into a switchover). It
// returns the scheduled time, or the status code and message to answer with.
func (s *Server) checkSwitchover(b switchoverBody, action string, failover, paused bool) (time.Time, int, string) {
	leader, candidate := b.leader, b.candidate
	var msg string
	switch {
	case failover && candidate == "":
		msg = "Failover could be performed only to a specific candidate"
	case !failover && leader == "":
		msg = "Switchover could be performed only from a specific leader"
	}
	var at time.Time
	if msg == "" && b.scheduled {
		switch {
		case failover:
			msg = "Failover can't be scheduled"
		case paused:
			msg = "Can't schedule switchover in the paused state"
		default:
			var code int
			if at, code, msg = s.parseSchedule(b.rawAt, action); msg != "" {
				return at, code, msg
			}
		}
	}
	if msg == "" && paused && candidate == "" {
		msg = "Switchover is possible only to a specific candidate in a paused state"
	}
	if msg == "" && leader == candidate {
		msg = "Switchover target and source are the same"
	}
	if msg != "" {
		return time.Time{}, http.StatusBadRequest, msg
	}
	return at, 0, ""
}

func (s *Server) postRestart(w http.ResponseWriter, r *http.Request, mgr ha.Manager) {
	body, ok := readBody(w, r, false)
	if !ok {
		return
	}
	var obj object
	if len(body) > 0 {
		var err error
		if obj, err = decodeObject(body); err != nil {
			writeMessage(w, r, http.StatusBadRequest, msgInvalidJSON, nil)
			return
		}
	}
	if _, ok := obj.get("schedule"); ok && s.paused() {
		writeMessage(w, r, http.StatusInternalServerError, "Can't schedule restart in the paused state", nil)
		return
	}
	// The keys are checked in the order of the body, as Patroni does: the first bad one answers.
	var req ha.RestartRequest
	for _, kv := range obj {
		var bad string
		switch kv.key {
		case "schedule":
			at, code, msg := s.parseSchedule(kv.val, "restart")
			if msg != "" {
				writeMessage(w, r, code, msg, nil)
				return
			}
			req.Schedule = at
		case "role":
			var role string
			if json.Unmarshal(kv.val, &role) != nil {
				role = ""
			}
			switch role {
			case "primary", "standby_leader", "replica":
				req.Role = role
			case "master":
				req.Role = "primary"
			default:
				bad = "PostgreSQL role should be either primary, standby_leader, or replica"
			}
		case "postgres_version":
			var v string
			n, ok := 0, json.Unmarshal(kv.val, &v) == nil
			if ok {
				n, ok = parsePostgresVersion(v)
			}
			if !ok {
				bad = "PostgreSQL version should be in the first.major.minor format"
			}
			req.PostgresVersion = n
		case "timeout":
			req.Timeout, bad = restartTimeout(kv.val)
		case "restart_pending":
			var p *bool
			if json.Unmarshal(kv.val, &p) != nil {
				bad = "restart_pending should be true or false"
			} else if p != nil {
				req.RestartPending = *p
			}
		default:
			bad = "Unknown filter for the scheduled restart: " + kv.key
		}
		if bad != "" {
			writeMessage(w, r, http.StatusBadRequest, bad, nil)
			return
		}
	}
	s.log.Info("received restart request", "role", req.Role, "postgres_version", req.PostgresVersion,
		"restart_pending", req.RestartPending, "timeout", req.Timeout, "schedule", req.Schedule,
		"remote", r.RemoteAddr)
	s.extendDeadlines(w)
	res := mgr.Restart(r.Context(), req)
	s.logResult(r, "restart", res)
	writeResult(w, r, res, nil)
}

func (s *Server) postReinitialize(w http.ResponseWriter, r *http.Request, mgr ha.Manager) {
	body, ok := readBody(w, r, false)
	if !ok {
		return
	}
	var req ha.ReinitRequest
	if len(body) > 0 {
		obj, err := decodeObject(body)
		if err != nil {
			writeMessage(w, r, http.StatusBadRequest, msgInvalidJSON, nil)
			return
		}
		// Patroni ignores other keys; a typo ("from_leadr") silently doing a reinit from the
		// wrong source is worse than a 400.
		if bad := obj.unknownKey("force", "from_leader", "from-leader"); bad != "" {
			writeMessage(w, r, http.StatusBadRequest, bad, nil)
			return
		}
		for _, kv := range obj {
			var dst *bool
			switch kv.key {
			case "force":
				dst = &req.Force
			case "from_leader", "from-leader":
				dst = &req.FromLeader
			default:
				continue
			}
			v, ok := parseBool(kv.val)
			if !ok {
				writeMessage(w, r, http.StatusBadRequest, kv.key+" should be true or false", nil)
				return
			}
			*dst = *dst || v
		}
	}
	s.log.Info("received reinitialize request", "force", req.Force, "from_leader", req.FromLeader,
		"remote", r.RemoteAddr)
	s.extendDeadlines(w)
	res := mgr.Reinitialize(r.Context(), req)
	s.logResult(r, "reinitialize", res)
	writeResult(w, r, res, nil)
}

func (s *Server) serveConfig(w http.ResponseWriter, r *http.Request, mgr ha.Manager) {
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		s.extendDeadlines(w)
		b, res := mgr.Config(r.Context())
		writeJSONResult(w, r, b, res)
		return
	}
	body, ok := readBody(w, r, true)
	if !ok {
		return
	}
	obj, err := decodeObject(body)
	if err != nil || len(obj) == 0 {
		writeMessage(w, r, http.StatusBadRequest, msgInvalidJSON, nil)
		return
	}
	for _, kv := range obj {
		if !config.KnownDynamicKey(kv.key) {
			writeMessage(w, r, http.StatusBadRequest, "unknown dynamic configuration key: "+kv.key, nil)
			return
		}
	}
	s.log.Info("received "+r.Method+" /config request", "remote", r.RemoteAddr)
	s.extendDeadlines(w)
	var b []byte
	var res ha.Result
	if r.Method == http.MethodPatch {
		b, res = mgr.PatchConfig(r.Context(), body)
	} else {
		b, res = mgr.PutConfig(r.Context(), body)
	}
	s.logResult(r, r.Method+" /config", res)
	writeJSONResult(w, r, b, res)
}

func (s *Server) postFailsafe(w http.ResponseWriter, r *http.Request, mgr ha.Manager) {
	body, ok := readBody(w, r, true)
	if !ok {
		return
	}
	var req ha.FailsafeRequest
	obj, err := decodeObject(body)
	if err != nil || len(obj) == 0 {
		writeMessage(w, r, http.StatusBadRequest, msgInvalidJSON, nil)
		return
	}
	if bad := obj.unknownKey("name", "conn_url", "api_url", "slots"); bad != "" {
		writeMessage(w, r, http.StatusBadRequest, bad, nil)
		return
	}
	if err := json.Unmarshal(body, &req); err != nil {
		msg := msgInvalidJSON
		if te, ok := errors.AsType[*json.UnmarshalTypeError](err); ok && te.Field != "" {
			msg = te.Field + " has the wrong type: expected " + jsonKind(te.Type.Kind())
		}
		writeMessage(w, r, http.StatusBadRequest, msg, nil)
		return
	}
	if !s.failsafeSender(r, req.Name) {
		s.log.Warn("REST API request refused: POST /failsafe not from the member it names", "remote", r.RemoteAddr,
			"name", req.Name)
		writeMessage(w, r, http.StatusForbidden,
			"Access is denied: POST /failsafe is accepted only from the member of the failsafe key it names", nil)
		return
	}
	s.extendDeadlines(w)
	lsn, res := mgr.Failsafe(r.Context(), req)
	if res.Code != http.StatusOK {
		writeResult(w, r, res, nil)
		return
	}
	if res.Message == "" {
		res.Message = "Accepted"
	}
	writeResult(w, r, res, []string{strconv.FormatInt(lsn, 10)})
}

// paused reports whether the latest Status says the cluster is in maintenance mode.
func (s *Server) paused() bool {
	st := s.status()
	return st != nil && st.Pause
}

// parseSchedule checks a scheduled_at or schedule value like Patroni's parse_schedule: an ISO 8601
// timestamp with a time zone, not in the past (a second of slack for clock granularity and
// transit). On failure it returns the status code and message to answer.
func (s *Server) parseSchedule(raw json.RawMessage, action string) (time.Time, int, string) {
	var p *string
	if err := json.Unmarshal(raw, &p); err != nil || p == nil {
		return time.Time{}, http.StatusUnprocessableEntity, "Unable to parse scheduled timestamp (" + string(raw) + ")"
	}
	str := *p
	t, tz, ok := parseISO8601(str)
	switch {
	case !ok:
		return time.Time{}, http.StatusUnprocessableEntity, "Unable to parse scheduled timestamp (" + str + ")"
	case !tz:
		return time.Time{}, http.StatusBadRequest, "Timezone information is mandatory for the scheduled " + action
	case t.Before(s.now().Add(-time.Second)):
		return time.Time{}, http.StatusUnprocessableEntity, "Cannot schedule " + action + " in the past"
	case t.After(s.now().Add(config.MaxScheduleAhead)):
		return time.Time{}, http.StatusUnprocessableEntity, scheduleTooFar(action)
	}
	return t, 0, ""
}

// extendDeadlines gives a management request managementTimeout from now to complete. Without it
// the server's ReadTimeout would end the request's context (net/http's background read on the
// connection fails at the read deadline) while the Manager still waits for a switchover, and the
// WriteTimeout would drop the answer.
func (s *Server) extendDeadlines(w http.ResponseWriter) {
	rc := http.NewResponseController(w)
	d := time.Now().Add(s.managementTimeout)
	_ = rc.SetReadDeadline(d) // ErrNotSupported outside a real connection (tests)
	_ = rc.SetWriteDeadline(d)
}

func (s *Server) logResult(r *http.Request, what string, res ha.Result) {
	s.log.Info(what+" answered", "code", res.Code, "message", res.Message, "remote", r.RemoteAddr)
}

// readBody reads a request body of at most maxBodyBytes. When required, a body without a
// Content-Length (chunked) is refused with 411, as Patroni does; an optional body is read either
// way. ok is false when the answer has been written.
func readBody(w http.ResponseWriter, r *http.Request, required bool) (body []byte, ok bool) {
	if required && r.ContentLength < 0 {
		writeMessage(w, r, http.StatusLengthRequired, msgLengthRequired, nil)
		return nil, false
	}
	if r.ContentLength > maxBodyBytes {
		writeMessage(w, r, http.StatusRequestEntityTooLarge, msgBodyTooLarge, nil)
		return nil, false
	}
	if r.Body == nil {
		return nil, true
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	if err != nil {
		if _, tooLarge := errors.AsType[*http.MaxBytesError](err); tooLarge {
			writeMessage(w, r, http.StatusRequestEntityTooLarge, msgBodyTooLarge, nil)
		} else {
			writeMessage(w, r, http.StatusBadRequest, msgCannotRead, nil)
		}
		return nil, false
	}
	return body, true
}

var hdrNosniff = []string{"nosniff"}

// writeMessage writes a text/plain answer whose body is msg exactly, as Patroni's write_response
// does (no trailing newline); HEAD and OPTIONS get the headers only.
func writeMessage(w http.ResponseWriter, r *http.Request, code int, msg string, allow []string) {
	h := w.Header()
	if allow != nil {
		h["Allow"] = allow
	}
	if r.Method == http.MethodHead || r.Method == http.MethodOptions {
		h["Content-Length"] = hdrZero
		w.WriteHeader(code)
		return
	}
	h["Content-Type"] = hdrText
	h["X-Content-Type-Options"] = hdrNosniff
	h["Content-Length"] = []string{strconv.Itoa(len(msg))}
	w.WriteHeader(code)
	_, _ = io.WriteString(w, msg)
}

// writeResult writes a Manager's Result as text; lsn, when set, is sent in Patroni's "lsn" header.
// A code no HTTP response can carry is a bug in the Manager and answers 500.
func writeResult(w http.ResponseWriter, r *http.Request, res ha.Result, lsn []string) {
	code, msg := res.Code, res.Message
	if code < 200 || code > 599 {
		code, msg = http.StatusInternalServerError, "invalid result code "+strconv.Itoa(res.Code)
		if res.Message != "" {
			msg += ": " + res.Message
		}
	}
	if msg == "" {
		msg = http.StatusText(code)
	}
	if lsn != nil {
		w.Header()["lsn"] = lsn // lower case, exactly as Patroni sends it
	}
	writeMessage(w, r, code, msg, nil)
}

// writeJSONResult writes a Manager's JSON answer (200) or its Result as text.
func writeJSONResult(w http.ResponseWriter, r *http.Request, body []byte, res ha.Result) {
	if res.Code != http.StatusOK {
		writeResult(w, r, res, nil)
		return
	}
	if len(body) == 0 {
		body = []byte("null")
	}
	writeJSONBody(w, r, http.StatusOK, body)
}

// writeJSONBody writes a JSON body; HEAD gets the headers only.
func writeJSONBody(w http.ResponseWriter, r *http.Request, code int, body []byte) {
	if r.Method == http.MethodHead {
		h := w.Header()
		h["Content-Type"] = hdrJSON
		h["Content-Length"] = contentLength(body)
		w.WriteHeader(code)
		return
	}
	writeJSON(w, code, body, contentLength(body))
}

// authorize checks restapi.authentication on the endpoints that change something (the last step
// of checkAccess). It returns "" when the request may go on, else Patroni's 401 message. The
// comparison is constant-time.
func (s *Server) authorize(r *http.Request) string {
	a := s.cfg.Auth
	if a == nil {
		return ""
	}
	user, pass, ok := r.BasicAuth()
	if !ok {
		return "no auth header received"
	}
	u := subtle.ConstantTimeCompare([]byte(user), []byte(a.Username))
	p := subtle.ConstantTimeCompare([]byte(pass), []byte(a.Password))
	if u&p != 1 {
		return msgNotAuthenticated
	}
	return ""
}

// msgNotAuthenticated is Patroni's answer to a wrong username or password.
const msgNotAuthenticated = "not authenticated"

// jsonKind names a Go kind the way a JSON author thinks of it.
func jsonKind(k reflect.Kind) string {
	switch k {
	case reflect.String:
		return "a string"
	case reflect.Int, reflect.Int64, reflect.Int32, reflect.Uint64, reflect.Float64:
		return "a number"
	case reflect.Bool:
		return "true or false"
	case reflect.Map, reflect.Struct:
		return "an object"
	case reflect.Slice:
		return "a list"
	}
	return k.String()
}
