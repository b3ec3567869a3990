package main

import (
	"errors"
	"flag"
	"fmt"

	"github.com/pxeops/pxeops/internal/safefile"
	"github.com/pxeops/pxeops/schema"
	"github.com/pxeops/pxeops/source"
)

// secretsFlags are --secrets-dir for serve, check and render, and
// --secrets-names for check and render, which check a tree in CI from
// the names alone.
type secretsFlags struct {
	dir, names string
}

func (s *secretsFlags) register(fset *flag.FlagSet, names bool) {
	fset.StringVar(&s.dir, "secrets-dir", "", "directory of secrets templates read with {{ secret \"name\" }}: one file per secret, its name the file name (a mounted Kubernetes Secret, a Vault agent's output); read only, reloaded on change")
	if names {
		fset.StringVar(&s.names, "secrets-names", "", "file of secret names, one per line, for checking without the values (CI): configs render <secret:name>, and a name not listed is an error")
	}
}

// load reads the set once, as serve's first scan does; nil when no flag
// is given.
func (s *secretsFlags) load() (*schema.Secrets, error) {
	switch {
	case s.dir != "" && s.names != "":
		return nil, errors.New("--secrets-dir and --secrets-names: give one; the names come from the directory")
	case s.dir != "":
		d, err := source.NewSecretsDir(s.dir, source.DirOptions{})
		if err != nil {
			return nil, fmt.Errorf("--secrets-dir: %w", err)
		}
		defer d.Close()
		rev, err := d.Once()
		if err != nil {
			return nil, fmt.Errorf("--secrets-dir %s: %w", s.dir, err)
		}
		return rev.Secrets, nil
	case s.names != "":
		data, err := safefile.ReadFile(s.names, schema.MaxFileSize)
		if err != nil {
			return nil, fmt.Errorf("--secrets-names: %w", err)
		}
		names, err := schema.ParseSecretNames(data)
		if err != nil {
			return nil, fmt.Errorf("--secrets-names %s:%w", s.names, err)
		}
		return schema.SecretNames("the names file "+s.names, names)
	}
	return nil, nil
}

// source wraps tree with the secrets directory for serve.
func (s *secretsFlags) source(tree source.Source, opts source.DirOptions) (source.Source, error) {
	if s.dir == "" {
		return tree, nil
	}
	d, err := source.NewSecretsDir(s.dir, opts)
	if err != nil {
		return nil, fmt.Errorf("--secrets-dir: %w", err)
	}
	return source.WithSecrets(tree, d), nil
}
