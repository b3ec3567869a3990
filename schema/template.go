package schema

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"text/template"

	"gopkg.in/yaml.v3"
)

// TemplateData is what profile arguments and config templates see.
type TemplateData struct {
	Machine   // .MAC .UUID .Hostname .Serial .Arch .Labels
	Metadata  map[string]any
	Group     string
	Profile   string
	Image     ImageData
	ServerURL string
	// ConfigServerURL is the base of the URLs the booted OS fetches its
	// own config from (ignition.config.url, cloud-init's seed): pxeops'
	// HTTPS URL when it serves HTTPS, else ServerURL. iPXE's own fetches
	// stay on ServerURL, as many iPXE builds cannot do TLS.
	ConfigServerURL string

	selector []string // the group's selector keys, for ConfigURL
}

// ConfigURL is the URL machine fetches its config from: ConfigServerURL's
// /config with the machine's MAC and its values for every key of the
// group's selector, so a group chosen by label or hostname is found
// again ({{ .ConfigURL }} in ignition.config.url).
func (d *TemplateData) ConfigURL() string {
	u := d.ConfigServerURL + "/config"
	if q := MachineQuery(&d.Machine, append([]string{KeyMAC}, d.selector...)); q != "" {
		u += "?" + q
	}
	return u
}

// InstalledPath is the path of machine mac's completion report under
// the server's URL (POST; {{ .InstalledURL }}).
func InstalledPath(mac string) string { return "/v1/machines/" + mac + "/installed" }

// InstalledURL is where the machine's installer reports completion
// (POST, no body): ConfigServerURL's InstalledPath, with the machine's
// values for the other keys of the group's selector, so the server
// finds the group again and decides access as for ConfigURL.
func (d *TemplateData) InstalledURL() string {
	u := d.ConfigServerURL + InstalledPath(d.MAC)
	keys := slices.DeleteFunc(slices.Clone(d.selector), func(k string) bool { return k == KeyMAC })
	if len(keys) > 0 {
		if q := MachineQuery(&d.Machine, keys); q != "" {
			u += "?" + q
		}
	}
	return u
}

// EscapeTemplate makes s literal text for text/template, pxeops' and
// Pixiecore's alike: each "{{" becomes an action printing "{{" (a lone
// "}}" is text already).
func EscapeTemplate(s string) string { return strings.ReplaceAll(s, "{{", `{{"{{"}}`) }

// MergeMetadata is over laid on under: mappings merge key by key, any
// other value of over (a list, a scalar, null) replaces under's. Neither
// is changed; the result may share their values, which are read-only.
// It is never nil, so {{ .Metadata.x }} fails as a missing key, not as a
// nil map.
func MergeMetadata(under, over map[string]any) map[string]any {
	out := make(map[string]any, len(under)+len(over))
	maps.Copy(out, under)
	for k, v := range over {
		a, aok := out[k].(map[string]any)
		b, bok := v.(map[string]any)
		if aok && bok {
			v = MergeMetadata(a, b)
		}
		out[k] = v
	}
	return out
}

// ImageData describes the profile's image to templates; {{ .Image }} alone
// prints its id.
type ImageData struct {
	ID, OS, Channel, Arch, Version string
}

func (i ImageData) String() string { return i.ID }

// MirrorData is what the omaha mirror and branch templates see.
type MirrorData struct {
	Channel, Arch, Board, Version, Image string
}

// Board is the release board of an arch, as release servers and
// update_engine name it: amd64-usr, arm64-usr.
func Board(arch string) string { return arch + "-usr" }

// MirrorData is the template data for release version of the image.
func (im *Image) MirrorData(version string) MirrorData {
	return MirrorData{Channel: im.Channel, Arch: im.Arch, Board: Board(im.Arch), Version: version, Image: im.id}
}

// Expand runs one of the omaha templates (omaha.mirror, omaha.branch) on d,
// with missing keys as errors, the way check validates them.
func (d MirrorData) Expand(name, text string) (string, error) {
	tmpl, err := parseTemplate(name, text)
	if err != nil {
		return "", err
	}
	if len(tmpl.secrets) > 0 {
		return "", errors.New("secret is for configs only: the mirror and branch are pushed and logged")
	}
	var b strings.Builder
	if err := tmpl.Execute(context.Background(), &b, d, argLimits); err != nil {
		return "", err
	}
	return b.String(), nil
}

// Config types a profile may serve.
const (
	ConfigIgnition    = "ignition"
	ConfigCloudConfig = "cloud-config"
	ConfigRaw         = "raw"
)

// templateErrPos maps a text/template error to a position in the file
// the template came from; line and col are where the template text starts.
func templateErrPos(file string, line, col int, err error) Pos {
	p := Pos{File: file, Line: line, Col: col}
	if be, ok := errors.AsType[*BudgetError](err); ok {
		return within(p, be.Line, be.Col)
	}
	rest, ok := strings.CutPrefix(err.Error(), "template: "+templateName(err)+":")
	if !ok {
		return p
	}
	loc, _, _ := strings.Cut(rest, ": ")
	parts := strings.Split(loc, ":")
	l, errL := strconv.Atoi(parts[0])
	if errL != nil {
		return p
	}
	c := 1
	if len(parts) > 1 {
		if v, err := strconv.Atoi(parts[1]); err == nil {
			c = v
		}
	}
	return within(p, l, c)
}

// within is the position of line l, column c of a template whose text
// starts at p.
func within(p Pos, l, c int) Pos {
	if l == 1 {
		return Pos{File: p.File, Line: p.Line, Col: p.Col + c - 1}
	}
	return Pos{File: p.File, Line: p.Line + l - 1, Col: c}
}

// templateErrMsg keeps what a person needs from a text/template error: the
// cause, without the template name and position already in the Pos.
func templateErrMsg(err error) string {
	if be, ok := errors.AsType[*BudgetError](err); ok {
		return be.msg
	}
	msg := err.Error()
	rest, ok := strings.CutPrefix(msg, "template: "+templateName(err)+":")
	if !ok {
		return msg
	}
	_, after, found := strings.Cut(rest, ": ")
	if !found {
		return msg
	}
	// "executing "name" at <.X>: cause" → "<.X>: cause"
	if strings.HasPrefix(after, "executing ") {
		if i := strings.Index(after, " at <"); i >= 0 {
			after = after[i+4:]
		}
	}
	return after
}

func templateName(err error) string {
	var ee template.ExecError
	if errors.As(err, &ee) {
		return ee.Name
	}
	msg := strings.TrimPrefix(err.Error(), "template: ")
	// Parse errors: "name:line: message"; names here never hold ':'.
	name, _, _ := strings.Cut(msg, ":")
	return name
}

// WriteArg writes the profile's i-th kernel argument for data.
func (p *Profile) WriteArg(ctx context.Context, w io.Writer, i int, data *TemplateData) error {
	if t := p.args[i]; t != nil {
		return t.Execute(ctx, w, data, argLimits)
	}
	_, err := io.WriteString(w, p.Args[i])
	return err
}

// ArgIsStatic reports whether argument i is the same for every machine.
func (p *Profile) ArgIsStatic(i int) bool { return p.args[i] == nil }

// WriteConfig renders the profile's config for data: ignition as JSON
// (the template may be written in YAML), anything else as the template
// produces it. It fails when the profile has no config.
//
// {{ secret "name" }} reads the secrets the tree was loaded with. When a
// config with real secret values fails, its error is never returned (a
// YAML or template error can quote the rendered text): the run is
// repeated with the values masked, and that run's error, or one saying
// only the values break it, is returned instead.
func (p *Profile) WriteConfig(ctx context.Context, w io.Writer, data *TemplateData) error {
	return p.writeConfig(ctx, w, data, p.secrets)
}

func (p *Profile) writeConfig(ctx context.Context, w io.Writer, data *TemplateData, sec *Secrets) error {
	err := p.renderConfig(ctx, w, data, sec)
	if err == nil || !sec.real() || len(p.SecretNames()) == 0 {
		return err
	}
	if merr := p.renderConfig(ctx, io.Discard, data, sec.Masked()); merr != nil {
		return merr
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return errSecretValues
}

func (p *Profile) renderConfig(ctx context.Context, w io.Writer, data *TemplateData, sec *Secrets) error {
	t := p.config
	if t == nil || t.tmpl == nil {
		return errors.New("profile has no config")
	}
	if p.Config.Type != ConfigIgnition && p.Config.Type != ConfigCloudConfig && p.Config.Type != ConfigButane {
		return t.tmpl.execute(ctx, w, data, configLimits, sec)
	}
	var buf bytes.Buffer
	if err := t.tmpl.execute(ctx, &buf, data, configLimits, sec); err != nil {
		return err
	}
	if p.Config.Type == ConfigCloudConfig {
		if err := checkCloudConfig(buf.Bytes()); err != nil {
			return err
		}
		_, err := w.Write(buf.Bytes())
		return err
	}
	out, _, err := finishConfig(p.Config.Type, buf.Bytes())
	if err != nil {
		return err
	}
	_, err = w.Write(out)
	return err
}

// ignitionJSON turns a rendered Ignition config written in YAML or JSON
// into the JSON that Ignition reads.
func ignitionJSON(rendered []byte) ([]byte, error) {
	var v map[string]any
	if err := yaml.Unmarshal(rendered, &v); err != nil {
		return nil, fmt.Errorf("rendered ignition config is not YAML or JSON: %w", err)
	}
	ign, _ := v["ignition"].(map[string]any)
	if ver, _ := ign["version"].(string); ver == "" {
		return nil, errors.New(`rendered ignition config has no ignition.version (e.g. ignition: {version: "3.4.0"})`)
	}
	out, err := json.Marshal(v)
	if err == nil && len(out) > MaxConfigSize {
		// YAML aliases can make the JSON larger than what the template wrote.
		return nil, fmt.Errorf("rendered ignition config is %d bytes as JSON, over the %d a config may be", len(out), MaxConfigSize)
	}
	return out, err
}

func checkCloudConfig(rendered []byte) error {
	first, _, _ := bytes.Cut(rendered, []byte("\n"))
	first = bytes.TrimSpace(first)
	switch {
	case bytes.Equal(first, []byte("#cloud-config")):
		var v map[string]any
		if err := yaml.Unmarshal(rendered, &v); err != nil {
			return fmt.Errorf("rendered cloud-config is not valid YAML: %w", err)
		}
		return nil
	case bytes.HasPrefix(first, []byte("#!")):
		return nil
	}
	return errors.New("rendered cloud-config must start with #cloud-config or #! (a script); cloud-init ignores anything else")
}
