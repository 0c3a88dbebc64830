// An upstream that reads request bodies the way Ollama does, and says which models it acted on.
//
// Bodies are decoded as gin's ShouldBindJSON decodes them (one json.NewDecoder(body).Decode
// into the request struct: case-insensitive keys with Unicode folding, last match wins,
// anything after the first value ignored), into copies of Ollama's request structs
// (api/types.go, openai/openai.go) with their real field types and tags. Model names are
// resolved as Ollama resolves them (internal/modelref ParseRef, types/model ParseName,
// cmp.Or(Model, Name)), lower-cased because Ollama finds models case-insensitively.
//
// Every request that gets as far as acting on a model answers {"acted": [...]} and is kept
// in GET /__log. Listing routes answer with the models given in -models.
//
// Stdlib only: built by the test suite with Debian's golang-go.
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"reflect"
	"strings"
	"sync"
)

// -form-binding: bind as echo's DefaultBinder (LocalAI) and fiber's BodyParser do, by the
// request's Content-Type: a urlencoded form sets string fields whose Go name matches a form
// key case-insensitively (no form tags on the request types), JSON is decoded as gin does.
var formBinding = flag.Bool("form-binding", false, "bind form bodies by Content-Type")

func bindForm(r *http.Request, v any) {
	_ = r.ParseForm()
	rv := reflect.ValueOf(v).Elem()
	for i := 0; i < rv.NumField(); i++ {
		f := rv.Type().Field(i)
		for k, vals := range r.PostForm {
			if strings.EqualFold(k, f.Name) && f.Type.Kind() == reflect.String && len(vals) > 0 {
				rv.Field(i).SetString(vals[0])
			}
		}
	}
}

// ---- Ollama's request types (the fields that matter, with their real types) ----

type Message struct {
	Role      string          `json:"role"`
	Content   string          `json:"content"`
	Images    []string        `json:"images,omitempty"`
	ToolCalls json.RawMessage `json:"tool_calls,omitempty"`
}

type GenerateRequest struct {
	Model     string          `json:"model"`
	Prompt    string          `json:"prompt"`
	Suffix    string          `json:"suffix"`
	System    string          `json:"system"`
	Template  string          `json:"template"`
	Context   []int           `json:"context,omitempty"`
	Stream    *bool           `json:"stream,omitempty"`
	Raw       bool            `json:"raw,omitempty"`
	Format    json.RawMessage `json:"format,omitempty"`
	KeepAlive json.RawMessage `json:"keep_alive,omitempty"`
	Images    []string        `json:"images,omitempty"`
	Options   map[string]any  `json:"options"`
}

type ChatRequest struct {
	Model     string          `json:"model"`
	Messages  []Message       `json:"messages"`
	Stream    *bool           `json:"stream,omitempty"`
	Format    json.RawMessage `json:"format,omitempty"`
	KeepAlive json.RawMessage `json:"keep_alive,omitempty"`
	Tools     json.RawMessage `json:"tools,omitempty"`
	Options   map[string]any  `json:"options"`
}

type EmbedRequest struct {
	Model     string          `json:"model"`
	Input     any             `json:"input"`
	KeepAlive json.RawMessage `json:"keep_alive,omitempty"`
	Truncate  *bool           `json:"truncate,omitempty"`
	Options   map[string]any  `json:"options"`
}

type EmbeddingRequest struct {
	Model     string          `json:"model"`
	Prompt    string          `json:"prompt"`
	KeepAlive json.RawMessage `json:"keep_alive,omitempty"`
	Options   map[string]any  `json:"options"`
}

type CreateRequest struct {
	Model      string            `json:"model"`
	Stream     *bool             `json:"stream,omitempty"`
	Quantize   string            `json:"quantize,omitempty"`
	From       string            `json:"from,omitempty"`
	RemoteHost string            `json:"remote_host,omitempty"`
	Files      map[string]string `json:"files,omitempty"`
	DraftFiles map[string]string `json:"draft_files,omitempty"`
	Adapters   map[string]string `json:"adapters,omitempty"`
	Template   string            `json:"template,omitempty"`
	System     string            `json:"system,omitempty"`
	Parameters map[string]any    `json:"parameters,omitempty"`
	Messages   []Message         `json:"messages,omitempty"`
	Name       string            `json:"name"`
	// Older servers (before 0.5.5) also read these; the gateway refuses them for limited keys.
	Modelfile string `json:"modelfile,omitempty"`
	Path      string `json:"path,omitempty"`
}

type ModelName struct { // DeleteRequest, and the name part of Show/Pull/Push
	Model string `json:"model"`
	Name  string `json:"name"`
}

type ShowRequest struct {
	Model   string         `json:"model"`
	System  string         `json:"system"`
	Verbose bool           `json:"verbose"`
	Options map[string]any `json:"options"`
	Name    string         `json:"name"`
}

type PullRequest struct {
	Model    string `json:"model"`
	Insecure bool   `json:"insecure,omitempty"`
	Username string `json:"username"`
	Password string `json:"password"`
	Stream   *bool  `json:"stream,omitempty"`
	Name     string `json:"name"`
}

type CopyRequest struct {
	Source      string `json:"source"`
	Destination string `json:"destination"`
}

// openai/openai.go: ChatCompletionRequest, CompletionRequest, EmbedRequest; responses.go
type OpenAIRequest struct {
	Model         string          `json:"model"`
	Messages      json.RawMessage `json:"messages"`
	Stream        bool            `json:"stream"`
	StreamOptions *struct {
		IncludeUsage bool `json:"include_usage"`
	} `json:"stream_options"`
	MaxTokens   *int     `json:"max_tokens"`
	Temperature *float64 `json:"temperature"`
	Input       any      `json:"input"`
	Prompt      any      `json:"prompt"`
}

// ---- Ollama's model names (internal/modelref ParseRef, types/model/name.go) ----

func parseSourceSuffix(raw string) (string, string, bool) {
	idx := strings.LastIndex(raw, ":")
	if idx >= 0 {
		suffixRaw := strings.TrimSpace(raw[idx+1:])
		suffix := strings.ToLower(suffixRaw)
		switch suffix {
		case "cloud", "local":
			return raw[:idx], suffix, true
		}
		if !strings.Contains(suffixRaw, "/") && strings.HasSuffix(suffix, "-cloud") {
			return raw[:idx+1] + suffixRaw[:len(suffixRaw)-len("-cloud")], "cloud", true
		}
	}
	return raw, "", false
}

func cutPromised(s, sep string) (string, string, bool) {
	i := strings.LastIndex(s, sep)
	if i < 0 {
		return s, "", false
	}
	before, after := s[:i], s[i+len(sep):]
	if before == "" {
		before = "!MISSING!"
	}
	if after == "" {
		after = "!MISSING!"
	}
	return before, after, true
}

func isValidPart(kind int, s string) bool { // 0 host, 1 namespace, 2 model, 3 tag
	max := 80
	if kind == 0 {
		max = 350
	}
	if len(s) < 1 || len(s) > max {
		return false
	}
	alnum := func(c byte) bool {
		return c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_'
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if i == 0 {
			if !alnum(c) {
				return false
			}
			continue
		}
		switch c {
		case '_', '-':
		case '.':
			if kind == 1 {
				return false
			}
		case ':':
			if kind != 0 {
				return false
			}
		default:
			if !alnum(c) {
				return false
			}
		}
	}
	return true
}

// resolve: the fully qualified model Ollama would act on, or "" if it refuses the name.
func resolve(raw string) string {
	raw = strings.TrimSpace(raw)
	if raw == "" {
		return ""
	}
	base, source, explicit := parseSourceSuffix(raw)
	if explicit {
		if _, _, nested := parseSourceSuffix(base); nested {
			return ""
		}
	}
	var host, ns, model, tag, scheme string
	s := base
	if strings.LastIndex(s, ":") > strings.LastIndex(s, "/") {
		s, tag, _ = cutPromised(s, ":")
	}
	var promised bool
	s, model, promised = cutPromised(s, "/")
	if !promised {
		model = s
	} else {
		s, ns, promised = cutPromised(s, "/")
		if !promised {
			ns = s
		} else {
			if sc, h, ok := strings.Cut(s, "://"); ok {
				scheme, host = sc, h
			} else {
				host = s
			}
		}
	}
	if host == "" {
		host = "registry.ollama.ai"
	}
	if ns == "" {
		ns = "library"
	}
	if tag == "" {
		tag = "latest"
	}
	if !(isValidPart(0, host) && isValidPart(1, ns) && isValidPart(2, model) && isValidPart(3, tag)) {
		return ""
	}
	out := strings.ToLower(host + "/" + ns + "/" + model + ":" + tag)
	if scheme != "" {
		out = strings.ToLower(scheme) + "://" + out
	}
	if source != "" {
		out += ":" + source
	}
	return out
}

func or(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// ---- the server ----

type server struct {
	mu     sync.Mutex
	log    []map[string]any
	models []string
}

func (s *server) reply(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// act records what the upstream acted on; a name Ollama would refuse stops the request.
func (s *server) act(w http.ResponseWriter, r *http.Request, raw []string, extra map[string]any) {
	acted := []string{}
	for _, n := range raw {
		q := resolve(n)
		if q == "" {
			s.reply(w, 400, map[string]any{"error": fmt.Sprintf("invalid model name %q", n)})
			return
		}
		acted = append(acted, q)
	}
	entry := map[string]any{"method": r.Method, "path": r.URL.Path, "acted": acted}
	for k, v := range extra {
		entry[k] = v
	}
	s.mu.Lock()
	s.log = append(s.log, entry)
	s.mu.Unlock()
	// Enough of each answer's shape for the SDKs to parse it.
	reply := map[string]any{
		"status": "success", "done": true, "response": "", "embeddings": [][]float32{},
		"embedding":  []float32{},
		"model_info": map[string]any{}, "message": map[string]string{"role": "assistant"},
	}
	for k, v := range entry {
		reply[k] = v
	}
	s.reply(w, 200, reply)
}

func bind(w http.ResponseWriter, r *http.Request, v any) bool {
	if *formBinding {
		ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
		if ct == "application/x-www-form-urlencoded" {
			bindForm(r, v)
			return true
		}
	}
	// gin's binding.decodeJSON: one Decode, nothing after the first value is looked at.
	if err := json.NewDecoder(r.Body).Decode(v); err != nil {
		status := 400
		if err == io.EOF {
			err = fmt.Errorf("missing request body")
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(map[string]string{"error": err.Error()})
		return false
	}
	return true
}

func (s *server) handle(w http.ResponseWriter, r *http.Request) {
	p := r.URL.Path
	switch {
	case p == "/__log":
		s.mu.Lock()
		defer s.mu.Unlock()
		s.reply(w, 200, s.log)
	case p == "/api/version" || p == "/":
		s.reply(w, 200, map[string]string{"version": "0.0.0-goupstream"})
	case p == "/api/tags" || p == "/api/ps":
		list := []map[string]any{}
		for _, m := range s.models {
			list = append(list, map[string]any{"name": m, "model": m, "size": 1})
		}
		s.reply(w, 200, map[string]any{"models": list})
	case p == "/v1/models":
		list := []map[string]any{}
		for _, m := range s.models {
			list = append(list, map[string]any{"id": m, "object": "model", "owned_by": "library"})
		}
		s.reply(w, 200, map[string]any{"object": "list", "data": list})
	case strings.HasPrefix(p, "/v1/models/"):
		s.act(w, r, []string{strings.TrimPrefix(p, "/v1/models/")}, nil)
	case p == "/api/generate":
		var q GenerateRequest
		if bind(w, r, &q) {
			s.act(w, r, []string{q.Model}, nil)
		}
	case p == "/api/chat":
		var q ChatRequest
		if bind(w, r, &q) {
			s.act(w, r, []string{q.Model}, nil)
		}
	case p == "/api/embed":
		var q EmbedRequest
		if bind(w, r, &q) {
			s.act(w, r, []string{q.Model}, nil)
		}
	case p == "/api/embeddings":
		var q EmbeddingRequest
		if bind(w, r, &q) {
			s.act(w, r, []string{q.Model}, nil)
		}
	case p == "/api/show":
		var q ShowRequest
		if bind(w, r, &q) {
			s.act(w, r, []string{or(q.Model, q.Name)}, nil)
		}
	case p == "/api/delete":
		var q ModelName
		if bind(w, r, &q) {
			s.act(w, r, []string{or(q.Model, q.Name)}, nil)
		}
	case p == "/api/pull" || p == "/api/push":
		var q PullRequest
		if bind(w, r, &q) {
			s.act(w, r, []string{or(q.Model, q.Name)}, nil)
		}
	case p == "/api/copy":
		var q CopyRequest
		if bind(w, r, &q) {
			s.act(w, r, []string{q.Source, q.Destination}, nil)
		}
	case p == "/api/create":
		var q CreateRequest
		if bind(w, r, &q) {
			names := []string{or(q.Model, q.Name)}
			if q.From != "" {
				names = append(names, q.From)
			}
			extra := map[string]any{
				"files":       len(q.Files) + len(q.DraftFiles) + len(q.Adapters),
				"remote_host": q.RemoteHost,
				"modelfile":   q.Modelfile != "" || q.Path != "",
			}
			s.act(w, r, names, extra)
		}
	case p == "/v1/chat/completions" || p == "/v1/completions" || p == "/v1/embeddings" ||
		p == "/v1/responses":
		var q OpenAIRequest
		if bind(w, r, &q) {
			s.act(w, r, []string{q.Model}, nil)
		}
	default:
		s.reply(w, 404, map[string]string{"error": "not found"})
	}
}

func main() {
	models := flag.String("models", "", "comma-separated model names for the listing routes")
	flag.Parse()
	s := &server{}
	if *models != "" {
		s.models = strings.Split(*models, ",")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	var out bytes.Buffer
	fmt.Fprintf(&out, "PORT %d\n", ln.Addr().(*net.TCPAddr).Port)
	fmt.Print(out.String())
	panic(http.Serve(ln, http.HandlerFunc(s.handle)))
}
