package schema

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"path"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/pxeops/pxeops/internal/safefile"
)

// Bounds on the tree as a whole; a repository past them is refused with an
// error rather than read into memory.
const (
	MaxFileSize = 1 << 20 // bytes in any one file
	MaxObjects  = 100_000 // entries in any one directory
)

// SettingsFile is the optional repository settings file.
const SettingsFile = "pxeops.yaml"

// objectDirs are the directories Load reads, one object per file.
var objectDirs = []string{"profiles", "groups", "images", "templates"}

// InTree reports whether Load reads the file or directory at name (a
// slash-separated path relative to the tree's root), apart from the
// keyring pxeops.yaml may name. Sources use it to know what to snapshot.
func InTree(name string) bool {
	first, _, _ := strings.Cut(name, "/")
	return name == SettingsFile || slices.Contains(objectDirs, first)
}

var idPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

// Load reads a config repository from fsys, decodes every file strictly
// and validates the whole. The tree is usable only when diags has no
// errors. It reads nothing outside profiles/, groups/, images/, templates/
// and pxeops.yaml, and never writes.
//
// cache, when not nil, carries work over from the previous load.
//
// When ctx ends first, Load stops within a template step or a file and
// returns a transient error saying so; the cache is left as it was.
func Load(ctx context.Context, fsys fs.FS, cache *Cache) (*Tree, Diagnostics) {
	return LoadWith(ctx, fsys, cache, nil)
}

// LoadWith is Load with the secrets the templates' {{ secret "name" }}
// read; nil: none, and any such call is an error. The digest does not
// cover the secrets: it stays what check computes from git alone.
func LoadWith(ctx context.Context, fsys fs.FS, cache *Cache, secrets *Secrets) (*Tree, Diagnostics) {
	if cache != nil {
		cache.mu.Lock()
		defer cache.mu.Unlock()
	}
	l := loader{ctx: ctx, fsys: fsys, cache: cache, files: map[string]cachedFile{}}
	t := &Tree{
		Profiles:  map[string]*Profile{},
		Groups:    map[string]*Group{},
		Images:    map[string]*Image{},
		Templates: map[string]*Template{},
		secrets:   secrets,
	}
	l.settings(&t.Settings)
	t.profileIDs = decodeDir(&l, "profiles", t.Profiles)
	t.groupIDs = decodeDir(&l, "groups", t.Groups)
	t.imageIDs = decodeDir(&l, "images", t.Images)
	l.templates(t)
	l.keyring(&t.Settings)
	runs := validate(ctx, t, &l.diags, cache)
	if err := context.Cause(ctx); err != nil {
		// What ran was cut short: none of it is worth keeping.
		return t, Diagnostics{{Pos: Pos{File: "."}, Severity: Error, Transient: true, Message: "load abandoned: " + err.Error()}}
	}
	t.digest = digest(t)
	if cache != nil {
		cache.files, cache.runs = l.files, runs
	}
	l.diags.Sort()
	return t, l.diags
}

type loader struct {
	ctx   context.Context
	fsys  fs.FS
	diags Diagnostics
	cache *Cache                // the previous load's work, read-only here
	files map[string]cachedFile // this load's, for the next
}

// objectFile is a YAML file holding one object.
type objectFile struct{ id, file string }

// object is what every decoded file type has in common.
type object[T any] interface {
	*T
	base() *meta
	check(checker)
}

func (m *meta) base() *meta { return m }

// decodeDir reads and decodes every object of dir into objs. Files are
// independent, so they are read and decoded on all cores; diagnostics are
// merged back in name order, keeping the output stable.
func decodeDir[T any, P object[T]](l *loader, dir string, objs map[string]P) (ids []string) {
	files := l.objectFiles(dir)
	results := make([]cachedFile, len(files))
	forEach(len(files), func(i int) {
		if l.ctx.Err() != nil {
			return
		}
		data, ok := read(l.fsys, files[i].file, &results[i].diags)
		if !ok {
			return
		}
		sum := sha256.Sum256(data)
		if e, hit := l.cache.lookup(files[i].file, sum); hit {
			results[i] = e
			return
		}
		r := cachedFile{sum: sum}
		obj := P(new(T))
		if decode(files[i], data, obj, obj.base(), &r.diags) {
			obj.base().sum = sum
			obj.check(checker{&r.diags})
			obj.base().canon = canonical(obj)
			r.obj = obj
		}
		results[i] = r
	})
	for i, f := range files {
		r := results[i]
		l.diags = append(l.diags, r.diags...)
		if r.obj == nil {
			continue
		}
		l.files[f.file] = r
		// The tree gets a copy: validate writes resolved references into
		// it, while the cached original may still back a served tree.
		c := P(new(T))
		*c = *r.obj.(P)
		objs[f.id] = c
		ids = append(ids, f.id)
	}
	return ids
}

// objectFiles lists the YAML objects of one directory, in name order.
func (l *loader) objectFiles(dir string) []objectFile {
	var out []objectFile
	for _, e := range l.entries(dir) {
		name := e.Name()
		file := path.Join(dir, name)
		id, ok := strings.CutSuffix(name, ".yaml")
		switch {
		case e.IsDir():
			l.diags.warnf(Pos{File: file}, "subdirectory ignored: objects live directly in %s/", dir)
		case !ok && (strings.HasSuffix(name, ".json") || strings.HasSuffix(name, ".ign")):
			// matchbox keeps groups and profiles as JSON: pxeops would read
			// none of them, so a half-migrated tree must not pass.
			l.diags.errorf(Pos{File: file}, "files in %s/ are YAML (.yaml); this looks like matchbox's JSON groups and profiles: convert them with pxeops import matchbox DATA-DIR OUT-DIR", dir)
		case !ok && strings.HasSuffix(name, ".yml"):
			l.diags.errorf(Pos{File: file}, "files in %s/ must end in .yaml; rename to %s.yaml", dir, strings.TrimSuffix(name, ".yml"))
		case !ok:
			l.diags.warnf(Pos{File: file}, "ignored: only .yaml files are read in %s/", dir)
		case !idPattern.MatchString(id):
			l.diags.errorf(Pos{File: file}, "invalid id %q: use letters, digits, '.', '_' and '-', starting with a letter or digit", id)
		default:
			out = append(out, objectFile{id: id, file: file})
		}
	}
	return out
}

// entries lists a directory; hidden entries (editor swap files, the
// ..data links of Kubernetes ConfigMaps) are skipped.
func (l *loader) entries(dir string) []fs.DirEntry {
	es, err := fs.ReadDir(l.fsys, dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		l.diags.readErrorf(Pos{File: dir}, "cannot read directory: %v", unwrapPath(err))
		return nil
	}
	if len(es) > MaxObjects {
		l.diags.errorf(Pos{File: dir}, "%d entries, more than the %d allowed; split the fleet across repositories", len(es), MaxObjects)
		return nil
	}
	es = slices.DeleteFunc(es, func(e fs.DirEntry) bool { return strings.HasPrefix(e.Name(), ".") })
	return es
}

// read returns a file's contents, refusing files over MaxFileSize without
// reading them whole, and anything but a regular file (a named pipe would
// never end) without reading it at all. That is an error of the tree, not
// a failed read worth retrying.
func read(fsys fs.FS, file string, diags *Diagnostics) ([]byte, bool) {
	f, err := fsys.Open(file)
	if err == nil {
		defer f.Close()
		if info, serr := f.Stat(); serr == nil {
			err = safefile.CheckMode(file, info.Mode())
		}
	}
	if errors.Is(err, safefile.ErrNotRegular) {
		diags.errorf(Pos{File: file}, "%v; config files must be regular files", unwrapPath(err))
		return nil, false
	}
	if err != nil {
		diags.readErrorf(Pos{File: file}, "cannot read: %v", unwrapPath(err))
		return nil, false
	}
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		diags.readErrorf(Pos{File: file}, "cannot read: %v", unwrapPath(err))
		return nil, false
	}
	if len(data) > MaxFileSize {
		diags.errorf(Pos{File: file}, "file is larger than %d bytes; config files are small, is this the right file?", MaxFileSize)
		return nil, false
	}
	return data, true
}

func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// decode parses one file holding exactly one YAML mapping into out. An
// object whose values were partly rejected is still kept, so the rest of
// it is validated and nothing refers to it in vain.
func decode(f objectFile, data []byte, out any, m *meta, diags *Diagnostics) bool {
	m.id, m.file = f.id, f.file
	root, ok := parse(f.file, data, diags)
	if !ok {
		return false
	}
	d := newDecoder(f.file, diags)
	v := reflect.ValueOf(out).Elem()
	d.decode(root, v, "", 0)
	applyDefaults(v)
	m.pos, m.bad = d.pos, d.bad
	return true
}

var yamlErrLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// parse returns the single document's root node of a YAML file.
func parse(file string, data []byte, diags *Diagnostics) (root *yaml.Node, ok bool) {
	defer func() {
		// yaml.v3 has panicked on hostile input before; a config file must
		// never take the process down.
		if r := recover(); r != nil {
			diags.errorf(Pos{File: file}, "YAML parser failed: %v", r)
			root, ok = nil, false
		}
	}()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	err := dec.Decode(&doc)
	if errors.Is(err, io.EOF) || (err == nil && (len(doc.Content) == 0 || isNull(doc.Content[0]))) {
		diags.errorf(Pos{File: file, Line: 1, Col: 1}, "file is empty; write the object's fields or delete the file")
		return nil, false
	}
	if err != nil {
		yamlError(file, err, diags)
		return nil, false
	}
	var next yaml.Node
	if err := dec.Decode(&next); !errors.Is(err, io.EOF) {
		if err != nil {
			yamlError(file, err, diags)
		} else {
			diags.errorf(Pos{File: file, Line: next.Line, Col: next.Column}, "second YAML document: one object per file; move it to a file of its own")
		}
		return nil, false
	}
	return doc.Content[0], true
}

func yamlError(file string, err error, diags *Diagnostics) {
	msg := err.Error()
	if m := yamlErrLine.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		diags.errorf(Pos{File: file, Line: line}, "invalid YAML: %s", m[2])
		return
	}
	diags.errorf(Pos{File: file}, "invalid YAML: %s", strings.TrimPrefix(msg, "yaml: "))
}

func (l *loader) settings(s *Settings) {
	s.file = SettingsFile
	defer applyDefaults(reflect.ValueOf(s).Elem()) // also when the file is absent or broken
	if _, err := fs.Stat(l.fsys, SettingsFile); errors.Is(err, fs.ErrNotExist) {
		return
	}
	if data, ok := read(l.fsys, SettingsFile, &l.diags); ok {
		decode(objectFile{id: "pxeops", file: SettingsFile}, data, s, &s.meta, &l.diags)
	}
}

func (l *loader) templates(t *Tree) {
	for _, e := range l.entries("templates") {
		file := path.Join("templates", e.Name())
		if e.IsDir() {
			l.diags.warnf(Pos{File: file}, "subdirectory ignored: templates live directly in templates/")
			continue
		}
		data, ok := read(l.fsys, file, &l.diags)
		if !ok {
			continue
		}
		// A template that fails to parse is kept without its parsed form,
		// so profiles naming it do not also report it missing.
		tm := &Template{Source: string(data), meta: meta{id: e.Name(), file: file, sum: sha256.Sum256(data)}}
		tm.canon = canonical(tm)
		tmpl, err := parseTemplate(file, tm.Source)
		if err != nil {
			l.diags.errorf(templateErrPos(file, 1, 1, err), "template: %s", templateErrMsg(err))
		}
		tm.tmpl = tmpl
		t.Templates[tm.id] = tm
		t.templateIDs = append(t.templateIDs, tm.id)
	}
}

// keyring checks that a keyring named in pxeops.yaml is a file of the tree.
func (l *loader) keyring(s *Settings) {
	k := s.Omaha.Keyring
	if k == "" {
		return
	}
	if !fs.ValidPath(k) {
		l.diags.errorf(s.Pos("omaha.keyring"), "invalid keyring path %q: a relative path inside the repository, e.g. keys/flatcar.asc", k)
		return
	}
	if info, err := fs.Stat(l.fsys, k); err != nil || !info.Mode().IsRegular() {
		l.diags.errorf(s.Pos("omaha.keyring"), "keyring %q is not a file in the repository", k)
	}
}

// canonical hashes an object's JSON form: its decoded, normalised values
// with sorted map keys. Objects come from YAML, so they always marshal.
func canonical(obj any) [32]byte {
	b, err := json.Marshal(obj)
	if err != nil {
		panic("schema: object does not marshal: " + err.Error())
	}
	return sha256.Sum256(b)
}

func digest(t *Tree) string {
	h := sha256.New()
	settings := canonical(&t.Settings)
	h.Write(settings[:])
	add := func(kind, id string, m *meta) {
		h.Write([]byte(kind + "\x00" + id + "\x00"))
		h.Write(m.canon[:])
	}
	for _, id := range t.profileIDs {
		add("profile", id, &t.Profiles[id].meta)
	}
	for _, id := range t.groupIDs {
		add("group", id, &t.Groups[id].meta)
	}
	for _, id := range t.imageIDs {
		add("image", id, &t.Images[id].meta)
	}
	for _, id := range t.templateIDs {
		add("template", id, &t.Templates[id].meta)
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil))
}
