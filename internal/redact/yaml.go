package redact

import (
	"fmt"

	"gopkg.in/yaml.v3"
)

// YAML marshals v (a config struct, as `gateway config print` shows it)
// with secrets masked. Keys are as v marshals them (its yaml tags).
func YAML(v any) ([]byte, error) {
	n, err := Node(v)
	if err != nil {
		return nil, err
	}
	out, err := yaml.Marshal(n)
	if err != nil {
		return nil, fmt.Errorf("redact: marshal YAML: %w", err)
	}
	return out, nil
}

// Config returns v as a generic tree (maps, slices, scalars) with secrets
// masked, ready for encoding/json.
func Config(v any) (any, error) {
	n, err := Node(v)
	if err != nil {
		return nil, err
	}
	var out any
	if err := n.Decode(&out); err != nil {
		return nil, fmt.Errorf("redact: decode YAML tree: %w", err)
	}
	return out, nil
}

// Node encodes v to a YAML node tree and masks it in place.
//
// A scalar under a secret key, or an item of a list under one, becomes
// Mask (booleans, nulls and empty strings stay: they hide nothing and show
// that a secret is unset). A mapping always applies the key rules afresh, so
// `tokens: [{token: ..., tenant: team-a}]` masks the token and keeps the
// tenant. Every other string is passed through String.
func Node(v any) (*yaml.Node, error) {
	n := new(yaml.Node)
	if err := n.Encode(v); err != nil {
		return nil, fmt.Errorf("redact: encode %T: %w", v, err)
	}
	mask(n, false)
	return n, nil
}

func mask(n *yaml.Node, secret bool) {
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			mask(c, secret)
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			mask(n.Content[i+1], IsSecretKey(n.Content[i].Value))
		}
	case yaml.SequenceNode:
		for _, c := range n.Content {
			mask(c, secret)
		}
	case yaml.ScalarNode:
		switch {
		case secret && n.Value != "" && n.Tag != "!!bool" && n.Tag != "!!null":
			n.Value, n.Tag, n.Style = Mask, "!!str", yaml.DoubleQuotedStyle
		case n.Tag == "!!str" || n.Tag == "":
			n.Value = String(n.Value)
		}
	case yaml.AliasNode:
		// Encoding Go values produces no aliases; a hand-built alias would
		// point at a node masked where it is defined.
	}
}
