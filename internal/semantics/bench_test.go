package semantics

import (
	"maps"
	"testing"
)

func BenchmarkAnnotate(b *testing.B) {
	for _, tc := range annotateCases {
		switch tc.name {
		case "openinference llm with flattened messages and tool calls",
			"genai chat with string and float tokens and tool_call parts",
			"openinference retriever with flattened documents",
			"openinference agno agent run":
		default:
			continue
		}
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				Annotate(tc.info, maps.Clone(tc.attrs))
			}
		})
	}
}
