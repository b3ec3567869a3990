package schema

import "strings"

// fleet refuses a tree from which no machine could boot: without groups
// every machine is turned away, which a moved groups/ folder, an emptied
// source or a --path off target all look like. pxeops.yaml's allowEmpty
// says it is meant; it turns the error into a warning.
func (v *validator) fleet() {
	if len(v.t.groupIDs) > 0 || v.hasErrorIn("groups") {
		return // broken group files say what is wrong themselves
	}
	var msg string
	switch {
	case len(v.t.profileIDs) == 0 && !v.hasErrorIn("profiles"):
		msg = "no groups/ and no profiles/: this does not look like a pxeops config repository (expected groups/<id>.yaml and profiles/<id>.yaml)"
	default:
		msg = "no groups/: no machine would boot from this tree (expected groups/<id>.yaml, each naming a profile)"
	}
	at := Pos{File: "groups"}
	if v.t.Settings.AllowEmpty {
		v.diags.warnf(at, "no groups/: no machine boots from this tree; valid because pxeops.yaml sets allowEmpty: true")
		return
	}
	v.diags.errorf(at, "%s; to serve an empty fleet on purpose, set allowEmpty: true in pxeops.yaml", msg)
}

// hasErrorIn reports whether an error was found in dir or a file of it.
func (v *validator) hasErrorIn(dir string) bool {
	for _, d := range *v.diags {
		if d.Severity == Error && (d.File == dir || strings.HasPrefix(d.File, dir+"/")) {
			return true
		}
	}
	return false
}
