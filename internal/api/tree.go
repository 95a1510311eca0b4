package api

// buildTree nests spans (given in start-time order) under their parents, so
// every children list comes out in start-time order too. A span whose parent
// is not among them (not arrived yet, or beyond MaxSpans) becomes a root
// flagged Orphan. Parent links that form a cycle (a malformed sender) are
// broken at the earliest span of the cycle, which also becomes an orphan
// root, so the result is always a finite tree. O(n).
func buildTree(spans []*SpanNode) []*SpanNode {
	byID := make(map[string]*SpanNode, len(spans))
	for _, n := range spans {
		byID[n.SpanID] = n
	}
	var roots []*SpanNode
	parentOf := make(map[*SpanNode]*SpanNode, len(spans))
	for _, n := range spans {
		if n.ParentSpanID == nil {
			roots = append(roots, n)
			continue
		}
		p, ok := byID[*n.ParentSpanID]
		if !ok || p == n {
			n.Orphan = true
			roots = append(roots, n)
			continue
		}
		p.Children = append(p.Children, n)
		parentOf[n] = p
	}

	// Spans on a parent cycle are unreachable from every root.
	seen := make(map[*SpanNode]bool, len(spans))
	visit := func(root *SpanNode) {
		stack := []*SpanNode{root}
		for len(stack) > 0 {
			n := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			seen[n] = true
			for _, c := range n.Children {
				if !seen[c] {
					stack = append(stack, c)
				}
			}
		}
	}
	for _, r := range roots {
		visit(r)
	}
	if len(seen) == len(spans) {
		return roots
	}
	for _, n := range spans {
		if seen[n] {
			continue
		}
		p := parentOf[n]
		kept := p.Children[:0]
		for _, c := range p.Children {
			if c != n {
				kept = append(kept, c)
			}
		}
		p.Children = kept
		n.Orphan = true
		roots = insertByStart(roots, n)
		visit(n)
	}
	return roots
}

// insertByStart keeps roots in start-time order when a cycle-breaker joins.
func insertByStart(roots []*SpanNode, n *SpanNode) []*SpanNode {
	i := len(roots)
	for i > 0 && roots[i-1].StartTime > n.StartTime {
		i--
	}
	roots = append(roots, nil)
	copy(roots[i+1:], roots[i:])
	roots[i] = n
	return roots
}
