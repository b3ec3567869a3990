// Package txtar reads and writes the txtar format that golden tests use
// to keep a whole input tree and its expected output in one file:
//
//	comment
//	-- groups/node1.yaml --
//	profile: worker
//	-- want --
//	groups/node1.yaml:1:10: error: ...
package txtar

import (
	"bytes"
	"strings"
)

// File is one named section.
type File struct {
	Name string
	Data []byte
}

// Archive is a comment followed by files.
type Archive struct {
	Comment []byte
	Files   []File
}

// Parse splits data into its comment and files. It never fails: text
// before the first marker is the comment.
func Parse(data []byte) *Archive {
	a := &Archive{}
	var cur *File
	for len(data) > 0 {
		line, rest, _ := bytes.Cut(data, []byte("\n"))
		data = rest
		if name, ok := marker(line); ok {
			a.Files = append(a.Files, File{Name: name})
			cur = &a.Files[len(a.Files)-1]
			continue
		}
		if cur == nil {
			a.Comment = append(a.Comment, line...)
			a.Comment = append(a.Comment, '\n')
		} else {
			cur.Data = append(cur.Data, line...)
			cur.Data = append(cur.Data, '\n')
		}
	}
	return a
}

func marker(line []byte) (string, bool) {
	s := string(line)
	if !strings.HasPrefix(s, "-- ") || !strings.HasSuffix(s, " --") || len(s) < 7 {
		return "", false
	}
	return strings.TrimSpace(s[3 : len(s)-3]), true
}

// Format writes a back out.
func Format(a *Archive) []byte {
	var b bytes.Buffer
	b.Write(a.Comment)
	for _, f := range a.Files {
		b.WriteString("-- " + f.Name + " --\n")
		b.Write(f.Data)
		if len(f.Data) > 0 && f.Data[len(f.Data)-1] != '\n' {
			b.WriteByte('\n')
		}
	}
	return b.Bytes()
}

// Get returns the named file's data and whether it exists.
func (a *Archive) Get(name string) ([]byte, bool) {
	for _, f := range a.Files {
		if f.Name == name {
			return f.Data, true
		}
	}
	return nil, false
}

// Set replaces or appends the named file.
func (a *Archive) Set(name string, data []byte) {
	for i := range a.Files {
		if a.Files[i].Name == name {
			a.Files[i].Data = data
			return
		}
	}
	a.Files = append(a.Files, File{Name: name, Data: data})
}
