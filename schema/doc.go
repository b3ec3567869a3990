// Package schema is the model of a config repository and the one place
// that reads it: the YAML types (profiles, groups, images, templates and
// pxeops.yaml), strict decoding that remembers every value's file:line:col,
// the checks of each object and of the tree as a whole, and the template
// runner that every profile argument and config goes through.
//
// Load reads a tree from any fs.FS (a directory, a git commit) and returns
// it with its Diagnostics: every finding, not just the first, each naming
// a position. A tree with errors is never half-used; callers keep the last
// good one. Everything read is bounded: file size and count (MaxFileSize,
// MaxObjects), and template execution in steps, time and output
// (MaxConfigSize, MaxCmdlineSize; see budget.go), so a hostile commit costs
// a diagnostic, not the server.
//
// A Tree's Digest hashes its meaning (canonical JSON of each decoded
// object), not its formatting, so a reformatted commit is the same
// revision. A Cache lets successive loads skip files and template runs
// whose inputs did not change.
//
// schema imports no other package of pxeops except internal helpers: it is
// the centre the rest depends on (render builds snapshots from a Tree;
// source and the updater ask it whether a tree is valid).
package schema
