// Package docsqueries holds the test that keeps the SQL in docs/queries.md
// and docs/semantics.md working: it stores simulated AgentOS traces in a
// real database and runs every documented query against them.
package docsqueries
