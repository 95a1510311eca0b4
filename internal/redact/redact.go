// Package redact masks secrets in what the gateway prints: configuration
// dumps (`gateway config print`) and log records.
//
// Two rules, applied everywhere:
//
//   - Keys that name a secret (IsSecretKey: password, secret, token,
//     api_key, authorization, ...) have their values replaced by Mask.
//   - Any string has credentials embedded in it masked (String): the
//     password of a URL (postgres://user:***@host/db), key=value passwords
//     (password=*** in a libpq DSN or a query string) and bearer / basic
//     credentials (Authorization: Bearer ***).
//
// Redaction is a safety net, not a guarantee: a secret under an innocent key
// and in no recognisable form passes through. Keep secrets under keys that
// say what they are.
package redact

import (
	"regexp"
	"strings"
	"unicode"
)

// Mask replaces a secret.
const Mask = "***"

// secretWords mark a key as secret when they appear as one of its words.
var secretWords = map[string]bool{
	"secret": true, "secrets": true, "token": true, "tokens": true,
	"password": true, "passwords": true, "passwd": true, "pass": true, "pwd": true, "passphrase": true,
	"credential": true, "credentials": true, "authorization": true, "auth": true, "cookie": true,
	"apikey": true, "privatekey": true,
	// Not "dsn": String masks a DSN's password and keeps host and database visible.
}

// innocentLast are final words that make a key describe a secret rather
// than hold one (token_file, secret_name, password_env, token_url).
var innocentLast = map[string]bool{
	"file": true, "path": true, "dir": true, "env": true, "name": true, "id": true, "type": true,
	"url": true, "uri": true, "endpoint": true, "header": true, "ttl": true, "timeout": true, "interval": true,
	"length": true, "len": true, "size": true, "limit": true, "count": true,
}

// counterWords mark token counts and similar numbers (max_tokens,
// gen_ai.usage.input_tokens, llm.token_count.prompt).
var counterWords = map[string]bool{
	"max": true, "min": true, "num": true, "count": true, "usage": true,
	"input": true, "output": true, "total": true, "prompt": true, "completion": true,
}

// IsSecretKey reports whether a key (YAML key, log attribute key, header
// name) names a secret: one of its words is secret-like (password, token,
// secret, auth, ...) or its last word is "key(s)" (api_key, secret_key,
// x-api-key), unless it describes rather than holds one (token_file,
// secret_name) or counts something (max_tokens).
func IsSecretKey(key string) bool {
	words := splitWords(key)
	if len(words) == 0 {
		return false
	}
	last := words[len(words)-1]
	if innocentLast[last] {
		return false
	}
	secret := last == "key" || last == "keys"
	for _, w := range words {
		if counterWords[w] {
			return false
		}
		if secretWords[w] {
			secret = true
		}
	}
	return secret
}

// splitWords lowercases key and splits it on punctuation and camelCase
// boundaries ("apiKey" → api, key; "X-Api-Key" → x, api, key).
func splitWords(key string) []string {
	var words []string
	var cur []rune
	flush := func() {
		if len(cur) > 0 {
			words = append(words, string(cur))
			cur = cur[:0]
		}
	}
	rs := []rune(key)
	for i, r := range rs {
		switch {
		case !unicode.IsLetter(r) && !unicode.IsDigit(r):
			flush()
			continue
		case unicode.IsUpper(r) && i > 0 && (unicode.IsLower(rs[i-1]) ||
			(i+1 < len(rs) && unicode.IsUpper(rs[i-1]) && unicode.IsLower(rs[i+1]))):
			flush() // apiKey, HTTPHeader
		}
		cur = append(cur, unicode.ToLower(r))
	}
	flush()
	return words
}

var (
	// scheme://user:password@host — the password may contain '@' and ':'
	// (unescaped, as people write them), so match to the last '@' before
	// whitespace or a quote.
	urlPassRe = regexp.MustCompile(`([A-Za-z][A-Za-z0-9+.-]*://[^:/?#@\s"']*:)[^\s"']*@`)
	// password=..., pwd=..., api_key=..., token=... in DSNs, query strings
	// and log lines; the value runs to whitespace, '&', ';' or a quote, or is
	// a quoted string.
	kvRe = regexp.MustCompile(`(?i)(\b[a-z_]*(?:password|passwd|pwd|secret|token|api[_-]?key)\s*=\s*)('(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"|[^\s&;'"]+)`)
	// Authorization header values.
	authRe = regexp.MustCompile(`(?i)\b(bearer|basic)(\s+)[A-Za-z0-9._~+/=-]+`)
)

// String masks credentials embedded in s: URL passwords, key=value
// secrets and bearer/basic credentials. Other text is unchanged.
func String(s string) string {
	if !strings.Contains(s, "://") && !strings.Contains(s, "=") && !mayHaveAuth(s) {
		return s // the common case: nothing to look for
	}
	s = urlPassRe.ReplaceAllString(s, "${1}"+Mask+"@")
	s = kvRe.ReplaceAllString(s, "${1}"+Mask)
	s = authRe.ReplaceAllString(s, "${1}${2}"+Mask)
	return s
}

func mayHaveAuth(s string) bool {
	for _, w := range []string{"earer", "EARER", "asic", "ASIC"} {
		if strings.Contains(s, w) {
			return true
		}
	}
	return false
}
