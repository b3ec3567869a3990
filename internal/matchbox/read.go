package matchbox

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"slices"
	"strings"

	"github.com/pxeops/pxeops/internal/safefile"
)

// Bounds of what Read takes in: matchbox data directories are a few
// hundred small files.
const (
	MaxFileSize  = 4 << 20
	MaxFiles     = 10_000
	MaxTotalSize = 256 << 20
)

// dirs are the data directory's parts Read takes; assets/ is served
// as it is (pxeops serve --assets-dir), not converted.
var dirs = []string{"profiles", "groups", "ignition", "cloud", "generic"}

// Read reads a matchbox data directory: the regular files directly in
// profiles/, groups/, ignition/, cloud/ and generic/, each at most
// MaxFileSize, through safefile (a named pipe is refused, never waited on).
func Read(dir string) (map[string][]byte, error) {
	root, err := safefile.OpenRoot(dir)
	if err != nil {
		return nil, err
	}
	defer root.Close()
	files := map[string][]byte{}
	total := 0
	for _, d := range dirs {
		info, err := root.Lstat(d)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if !info.IsDir() {
			return nil, fmt.Errorf("%s: is a %s, not a directory", d, safefile.Kind(info.Mode()))
		}
		f, err := root.Open(d)
		if err != nil {
			return nil, err
		}
		entries, err := f.ReadDir(MaxFiles + 1)
		f.Close()
		if err != nil && len(entries) == 0 && !errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%s: %w", d, err)
		}
		slices.SortFunc(entries, func(a, b os.DirEntry) int { return strings.Compare(a.Name(), b.Name()) })
		for _, e := range entries {
			if e.IsDir() || e.Name()[0] == '.' {
				continue
			}
			if len(files) == MaxFiles {
				return nil, fmt.Errorf("more than %d files", MaxFiles)
			}
			name := path.Join(d, e.Name())
			data, err := safefile.ReadFileIn(root, name, MaxFileSize)
			if err != nil {
				return nil, err
			}
			if total += len(data); total > MaxTotalSize {
				return nil, fmt.Errorf("more than %d bytes in all", MaxTotalSize)
			}
			files[name] = data
		}
	}
	return files, nil
}
