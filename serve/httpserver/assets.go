package httpserver

import (
	"errors"
	"fmt"
	"io/fs"
	"mime"
	"net/http"
	"os"
	"path"
	"strings"

	"github.com/pxeops/pxeops/internal/safefile"
)

// assets serves files below one directory. os.Root confines every open to
// it, symlinks included; directories are never listed, and named pipes,
// devices and sockets are never opened in a way that waits (safefile):
// all of them are 404, like a missing file. http.ServeContent
// answers Range and conditional requests and, given an *os.File, sends it
// with sendfile.
type assets struct {
	root   *os.Root
	prefix string // the URL path it is served under, e.g. /assets/
	flag   string // the flag that names the directory, for errors
}

func newAssets(dir, prefix, flag string) (*assets, error) {
	a := &assets{prefix: prefix, flag: flag}
	if dir == "" {
		return a, nil
	}
	root, err := safefile.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", flag, err)
	}
	a.root = root
	return a, nil
}

func (a *assets) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if a.root == nil {
		http.Error(w, "no directory configured ("+a.flag+")", http.StatusNotFound)
		return
	}
	name := strings.TrimPrefix(r.URL.Path, a.prefix)
	if !safefile.ServedName(name) {
		http.Error(w, "not found", http.StatusNotFound)
		return
	}
	f, err := safefile.OpenIn(a.root, name)
	if err != nil {
		code := http.StatusNotFound
		if errors.Is(err, fs.ErrPermission) {
			code = http.StatusForbidden
		}
		http.Error(w, http.StatusText(code), code)
		return
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		http.Error(w, "not found", http.StatusNotFound)
		return
	}
	ctype := mime.TypeByExtension(path.Ext(name))
	if ctype == "" {
		ctype = "application/octet-stream" // kernels and initrds; never sniffed as text
	}
	w.Header().Set("Content-Type", ctype)
	w.Header().Set("ETag", fmt.Sprintf(`"%x-%x"`, info.ModTime().UnixNano(), info.Size()))
	http.ServeContent(w, r, name, info.ModTime(), f)
}
