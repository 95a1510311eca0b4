package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

// Error is one configuration problem, located in the file.
type Error struct {
	File  string
	Line  int
	Field string
	Msg   string
}

func (e Error) Error() string {
	loc := e.File
	if e.Line > 0 {
		loc = fmt.Sprintf("%s:%d", e.File, e.Line)
	}
	if e.Field == "" {
		return loc + ": " + e.Msg
	}
	return loc + ": " + e.Field + ": " + e.Msg
}

// Errors is every problem found; Load and Validate return all of them at once.
type Errors []Error

func (es Errors) Error() string {
	parts := make([]string, len(es))
	for i, e := range es {
		parts[i] = e.Error()
	}
	return strings.Join(parts, "\n")
}

// Load reads, expands, strictly decodes and validates the file at path.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config %s: %w", path, err)
	}
	return Parse(path, data, os.LookupEnv)
}

// Parse is Load on bytes; lookup resolves ${ENV} references.
func Parse(file string, data []byte, lookup func(string) (string, bool)) (*Config, error) {
	cfg := Defaults()
	cfg.File = file
	cfg.lines = map[string]int{}

	root, err := parseYAML(data)
	if err != nil {
		if errors.Is(err, io.EOF) {
			// An empty file means "all defaults".
			return &cfg, cfg.Validate()
		}
		return nil, Errors{yamlError(file, err)}
	}
	var errs Errors
	doc := root
	if doc.Kind == yaml.DocumentNode && len(doc.Content) == 1 {
		doc = doc.Content[0]
	}
	if doc.Kind != yaml.MappingNode {
		return nil, Errors{{File: file, Line: doc.Line, Msg: "the config must be a YAML mapping"}}
	}
	// Strictness and line numbers: walk the tree against the struct.
	walk(doc, reflect.TypeOf(cfg), "", file, cfg.lines, &errs)
	// Expansion happens on scalar values only, after parsing.
	expand(doc, "", file, lookup, &errs)
	if len(errs) > 0 {
		return nil, errs
	}
	if err := doc.Decode(&cfg); err != nil {
		return nil, yamlErrors(file, err)
	}
	if err := cfg.Validate(); err != nil {
		return &cfg, err
	}
	return &cfg, nil
}

// parseYAML parses the first document of data. A document YAML refuses is
// parsed again with its ${VAR} references quoted where they stand alone in
// a flow collection ("tokens: [${A}, ${B}]", "headers: {k: ${V}}"): YAML
// reads '{' and '}' there as structure, but that is what users write first.
// The retry keeps the references plain, so they expand as anywhere else; a
// retry that would change any other value is not taken.
func parseYAML(data []byte) (*yaml.Node, error) {
	var root yaml.Node
	err := yaml.NewDecoder(bytes.NewReader(data)).Decode(&root)
	if err == nil || errors.Is(err, io.EOF) {
		return &root, err
	}
	quoted, at := quoteFlowRefs(data)
	if len(at) == 0 {
		return nil, err
	}
	var retry yaml.Node
	if yaml.NewDecoder(bytes.NewReader(quoted)).Decode(&retry) != nil {
		return nil, err
	}
	// Every inserted pair of quotes must have made exactly one scalar that
	// is the reference itself, not part of some other string or a comment.
	found := 0
	var unquote func(n *yaml.Node)
	unquote = func(n *yaml.Node) {
		if n.Kind == yaml.ScalarNode && n.Style == yaml.DoubleQuotedStyle {
			if ref, ok := at[[2]int{n.Line, n.Column}]; ok && n.Value == ref {
				n.Style = 0
				found++
			}
		}
		for _, c := range n.Content {
			unquote(c)
		}
	}
	unquote(&retry)
	if found != len(at) {
		return nil, err
	}
	return &retry, nil
}

// refRe matches one ${VAR} or ${VAR:-default} reference that needs no
// escaping inside double quotes.
var refRe = regexp.MustCompile(`\$\{[A-Za-z_][A-Za-z0-9_]*(:-[^}"\\]*)?\}`)

// quoteFlowRefs puts double quotes around each reference that is a whole
// flow item or flow value: after '[', '{', ',' or ': ' and before ',', ']'
// or '}' on the same line. It returns the new text and, by the line and
// column (1-based, as in yaml.Node) of each opening quote, the reference.
func quoteFlowRefs(data []byte) ([]byte, map[[2]int]string) {
	at := map[[2]int]string{}
	lines := bytes.SplitAfter(data, []byte("\n"))
	for i, line := range lines {
		var out []byte
		last, shift := 0, 0
		for _, m := range refRe.FindAllIndex(line, -1) {
			before := bytes.TrimRight(line[:m[0]], " \t")
			after := bytes.TrimLeft(line[m[1]:], " \t")
			if len(before) == 0 || len(after) == 0 || !strings.ContainsRune("[{,:", rune(before[len(before)-1])) ||
				!strings.ContainsRune(",]}", rune(after[0])) || quotedOrComment(line[:m[0]]) {
				continue
			}
			out = append(out, line[last:m[0]]...)
			at[[2]int{i + 1, utf8.RuneCount(line[:m[0]]) + shift + 1}] = string(line[m[0]:m[1]])
			out = append(out, '"')
			out = append(out, line[m[0]:m[1]]...)
			out = append(out, '"')
			last, shift = m[1], shift+2
		}
		if out != nil {
			lines[i] = append(out, line[last:]...)
		}
	}
	return bytes.Join(lines, nil), at
}

// quotedOrComment reports whether the end of prefix, the start of a line,
// lies inside a quoted string or a comment. Strings spanning lines are not
// followed: parseYAML's check catches what this misses.
func quotedOrComment(prefix []byte) bool {
	var quote byte
	for i := 0; i < len(prefix); i++ {
		c := prefix[i]
		switch {
		case quote == '"' && c == '\\':
			i++
		case quote != 0 && c == quote:
			quote = 0
		case quote == 0 && (c == '"' || c == '\''):
			quote = c
		case quote == 0 && c == '#' && (i == 0 || prefix[i-1] == ' ' || prefix[i-1] == '\t'):
			return true
		}
	}
	return quote != 0
}

var yamlLineRe = regexp.MustCompile(`line (\d+): (.*)`)

// yamlErrors splits a yaml.TypeError into one located Error per problem.
func yamlErrors(file string, err error) Errors {
	var te *yaml.TypeError
	if errors.As(err, &te) {
		out := make(Errors, 0, len(te.Errors))
		for _, e := range te.Errors {
			out = append(out, yamlError(file, errors.New(e)))
		}
		return out
	}
	return Errors{yamlError(file, err)}
}

// yamlError turns yaml.v3's "yaml: line N: msg" into a located Error.
func yamlError(file string, err error) Error {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	msg = strings.TrimPrefix(msg, "unmarshal errors:\n  ")
	if m := yamlLineRe.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		return Error{File: file, Line: line, Msg: m[2]}
	}
	return Error{File: file, Msg: msg}
}

// walk records the line of every known field and reports unknown keys.
// Free-form maps (a destination's config block) are not checked, the plugin
// validates those, but their lines are recorded too.
func walk(n *yaml.Node, t reflect.Type, path, file string, lines map[string]int, errs *Errors) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == authTokenType {
		// Checked here rather than only in UnmarshalYAML so that the
		// error names the list entry, not just its line.
		if msg := authTokenShape(n); msg != "" {
			*errs = append(*errs, Error{File: file, Line: n.Line, Field: path, Msg: msg})
			return
		}
	}
	switch {
	case n.Kind == yaml.MappingNode && t.Kind() == reflect.Struct && !isScalarType(t):
		fields := yamlFields(t)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			p := join(path, k.Value)
			f, ok := fields[k.Value]
			if !ok {
				*errs = append(*errs, Error{File: file, Line: k.Line, Field: p,
					Msg: "unknown key (known: " + strings.Join(sortedKeys(fields), ", ") + ")"})
				continue
			}
			lines[p] = k.Line
			walk(v, f.Type, p, file, lines, errs)
		}
	case n.Kind == yaml.MappingNode && (t.Kind() == reflect.Map || t.Kind() == reflect.Interface):
		// Free-form (a destination's config block): any key goes, but its
		// line is kept so that a plugin's complaint about it can be located.
		elem := t
		if t.Kind() == reflect.Map {
			elem = t.Elem()
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			p := join(path, k.Value)
			lines[p] = k.Line
			walk(v, elem, p, file, lines, errs)
		}
	case n.Kind == yaml.SequenceNode && (t.Kind() == reflect.Slice || t.Kind() == reflect.Interface):
		elem := t
		if t.Kind() == reflect.Slice {
			elem = t.Elem()
		}
		for i, c := range n.Content {
			p := fmt.Sprintf("%s[%d]", path, i)
			lines[p] = c.Line
			walk(c, elem, p, file, lines, errs)
		}
	}
}

func isScalarType(t reflect.Type) bool {
	return t == reflect.TypeOf(Duration(0)) || t == reflect.TypeOf(ByteSize(0))
}

func yamlFields(t reflect.Type) map[string]reflect.StructField {
	out := map[string]reflect.StructField{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := strings.Split(f.Tag.Get("yaml"), ",")[0]
		if tag == "" || tag == "-" || !f.IsExported() {
			continue
		}
		out[tag] = f
	}
	return out
}

func sortedKeys(m map[string]reflect.StructField) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

var envRe = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)(:-([^}]*))?\}|\$\$`)

// expand replaces ${VAR} and ${VAR:-default} in scalar values; "$$" is a
// literal "$". An unset variable without a default is an error naming it.
func expand(n *yaml.Node, path, file string, lookup func(string) (string, bool), errs *Errors) {
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			expand(n.Content[i+1], join(path, n.Content[i].Value), file, lookup, errs)
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			expand(c, fmt.Sprintf("%s[%d]", path, i), file, lookup, errs)
		}
	case yaml.ScalarNode:
		if !strings.Contains(n.Value, "$") {
			return
		}
		n.Value = envRe.ReplaceAllStringFunc(n.Value, func(m string) string {
			if m == "$$" {
				return "$"
			}
			sub := envRe.FindStringSubmatch(m)
			if v, ok := lookup(sub[1]); ok && v != "" {
				return v
			}
			if sub[2] != "" {
				return sub[3]
			}
			*errs = append(*errs, Error{File: file, Line: n.Line, Field: path,
				Msg: fmt.Sprintf("environment variable %s is not set (use ${%s:-default} for a default)", sub[1], sub[1])})
			return ""
		})
		// An expanded value is data, never YAML structure. Typed gateway
		// fields re-resolve it ("2" may fill an int); inside a destination's
		// free-form config block it stays a string, so a numeric-looking
		// secret reaches the plugin unchanged.
		if n.Style == 0 && !strings.Contains(path, ".config") {
			n.Tag = ""
		} else {
			n.Tag = "!!str"
		}
	}
}

// Duration is a time.Duration written as "250ms", "5s", "1h".
type Duration time.Duration

// UnmarshalYAML parses a Go duration string.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: want a duration like 250ms or 5s, got %q", n.Line, n.Value)
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML renders the duration as a string.
func (d Duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }

// D returns the time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// ByteSize is a size written as a number of bytes or with a unit: 512KiB, 16MiB, 1GiB, 10MB.
type ByteSize int64

var sizeRe = regexp.MustCompile(`^\s*(\d+)\s*([KMG]i?B|B)?\s*$`)

// UnmarshalYAML parses a size.
func (b *ByteSize) UnmarshalYAML(n *yaml.Node) error {
	m := sizeRe.FindStringSubmatch(n.Value)
	if m == nil {
		return fmt.Errorf("line %d: want a size like 16MiB or 1048576, got %q", n.Line, n.Value)
	}
	v, err := strconv.ParseInt(m[1], 10, 64)
	if err != nil {
		return fmt.Errorf("line %d: size %q: %w", n.Line, n.Value, err)
	}
	mult := map[string]int64{"": 1, "B": 1, "KB": 1e3, "MB": 1e6, "GB": 1e9, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30}[m[2]]
	*b = ByteSize(v * mult)
	return nil
}

// MarshalYAML renders the size in bytes.
func (b ByteSize) MarshalYAML() (any, error) { return int64(b), nil }

var authTokenType = reflect.TypeOf(AuthToken{})

// authTokenShape says what is wrong with n as an AuthToken, or "".
func authTokenShape(n *yaml.Node) string {
	const want = "want a token string, or a mapping with token and tenant"
	switch {
	case n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null":
		return want + "; got an empty entry"
	case n.Kind == yaml.SequenceNode:
		return want + "; got a list"
	case n.Kind != yaml.ScalarNode && n.Kind != yaml.MappingNode && n.Kind != yaml.AliasNode:
		return want
	}
	return ""
}

// UnmarshalYAML reads a token string (tenant DefaultTenant) or a
// {token, tenant} mapping.
func (a *AuthToken) UnmarshalYAML(n *yaml.Node) error {
	if msg := authTokenShape(n); msg != "" {
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: %s", n.Line, msg)}}
	}
	if n.Kind == yaml.ScalarNode {
		// n.Value, not a decode: a numeric-looking token stays as written.
		*a = AuthToken{Token: n.Value, Tenant: DefaultTenant}
		return nil
	}
	type fields AuthToken // the same fields, without this method
	return n.Decode((*fields)(a))
}
