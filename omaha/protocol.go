package omaha

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strings"
)

// AppID is the Omaha application id of Flatcar and CoreOS alike.
const AppID = "{e96281a6-d1af-4bde-9a0a-97b76e56dc57}"

// MaxBody bounds an Omaha document read from the network; update_engine's
// requests are well under 2 KiB and responses under 8 KiB.
const MaxBody = 64 << 10

// EventUpdateComplete is the event update_engine reports after booting
// into a new version.
const EventUpdateComplete = 3

// Request is an Omaha v3 request, as update_engine sends it.
type Request struct {
	XMLName        xml.Name     `xml:"request"`
	Protocol       string       `xml:"protocol,attr"`
	Version        string       `xml:"version,attr,omitempty"`
	UpdaterVersion string       `xml:"updaterversion,attr,omitempty"`
	InstallSource  string       `xml:"installsource,attr,omitempty"`
	IsMachine      string       `xml:"ismachine,attr,omitempty"`
	OS             RequestOS    `xml:"os"`
	Apps           []RequestApp `xml:"app"`
}

// RequestOS describes the requesting host.
type RequestOS struct {
	Version  string `xml:"version,attr,omitempty"`
	Platform string `xml:"platform,attr,omitempty"`
	SP       string `xml:"sp,attr,omitempty"`
	Arch     string `xml:"arch,attr,omitempty"`
}

// RequestApp is one application of a request: for Flatcar, the OS.
type RequestApp struct {
	AppID           string       `xml:"appid,attr"`
	Version         string       `xml:"version,attr,omitempty"`
	Track           string       `xml:"track,attr,omitempty"`
	Board           string       `xml:"board,attr,omitempty"`
	BootID          string       `xml:"bootid,attr,omitempty"`
	MachineID       string       `xml:"machineid,attr,omitempty"`
	OEM             string       `xml:"oem,attr,omitempty"`
	MultiManifestOK string       `xml:"multi_manifest_ok,attr,omitempty"`
	DeltaOkay       string       `xml:"delta_okay,attr,omitempty"`
	UpdateCheck     *UpdateCheck `xml:"updatecheck"`
	Ping            *Ping        `xml:"ping"`
	Events          []Event      `xml:"event"`
}

// Ping is the request's liveness ping.
type Ping struct {
	Active string `xml:"active,attr,omitempty"`
	Status string `xml:"status,attr,omitempty"`
}

// Event is an update_engine progress report.
type Event struct {
	Type            int    `xml:"eventtype,attr"`
	Result          int    `xml:"eventresult,attr"`
	PreviousVersion string `xml:"previousversion,attr,omitempty"`
	ErrorCode       string `xml:"errorcode,attr,omitempty"`
}

// Response is an Omaha v3 response.
type Response struct {
	XMLName  xml.Name      `xml:"response"`
	Protocol string        `xml:"protocol,attr"`
	Server   string        `xml:"server,attr,omitempty"`
	DayStart *DayStart     `xml:"daystart"`
	Apps     []ResponseApp `xml:"app"`
}

// DayStart tells the host how far into the day the server is.
type DayStart struct {
	ElapsedSeconds string `xml:"elapsed_seconds,attr"`
}

// ResponseApp answers one RequestApp.
type ResponseApp struct {
	AppID       string        `xml:"appid,attr"`
	Status      string        `xml:"status,attr"`
	UpdateCheck *UpdateCheck  `xml:"updatecheck"`
	Ping        *Ping         `xml:"ping"`
	Events      []EventAnswer `xml:"event"`
}

// EventAnswer acknowledges an event.
type EventAnswer struct {
	Status string `xml:"status,attr"`
}

// UpdateCheck is a request's check (empty) or a response's verdict.
// With multi_manifest_ok, Flatcar's service (Nebraska) may answer with
// several manifests: floor releases a disk install must pass through,
// then the target; or floors only, when more remain than fit.
type UpdateCheck struct {
	Status    string     `xml:"status,attr,omitempty"`
	URLs      []URL      `xml:"urls>url"`
	Manifests []Manifest `xml:"manifest"`
}

// URL is a download location of the update payload.
type URL struct {
	Codebase string `xml:"codebase,attr"`
}

// Manifest names the version an update brings.
type Manifest struct {
	Version     string    `xml:"version,attr"`
	IsFloor     string    `xml:"is_floor,attr,omitempty"`
	IsTarget    string    `xml:"is_target,attr,omitempty"`
	FloorReason string    `xml:"floor_reason,attr,omitempty"`
	Packages    []Package `xml:"packages>package"`
	Actions     []Action  `xml:"actions>action"`
}

// Package is one payload file.
type Package struct {
	Name     string `xml:"name,attr"`
	Hash     string `xml:"hash,attr,omitempty"`
	Size     string `xml:"size,attr,omitempty"`
	Required string `xml:"required,attr,omitempty"`
}

// Action is a post-install instruction; Flatcar puts the payload's sha256
// here.
type Action struct {
	Event  string `xml:"event,attr"`
	SHA256 string `xml:"sha256,attr,omitempty"`
}

// readBounded reads at most MaxBody bytes, failing on more.
func readBounded(r io.Reader) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxBody+1))
	if err != nil {
		return nil, err
	}
	if len(data) > MaxBody {
		return nil, fmt.Errorf("document larger than %d bytes", MaxBody)
	}
	return data, nil
}

// unmarshal decodes exactly one document whose root element is root.
func unmarshal(data []byte, root string, v any) error {
	d := xml.NewDecoder(bytes.NewReader(data))
	d.Strict = true
	if err := d.Decode(v); err != nil {
		var se *xml.SyntaxError
		if errors.As(err, &se) {
			return fmt.Errorf("invalid XML at line %d: %s", se.Line, se.Msg)
		}
		var ue xml.UnmarshalError
		if errors.As(err, &ue) {
			return fmt.Errorf("not an Omaha %s: %s", root, ue)
		}
		if errors.Is(err, io.EOF) {
			return fmt.Errorf("no XML element: want an Omaha <%s>", root)
		}
		return fmt.Errorf("invalid XML: %v", err)
	}
	return nil
}

// ParseRequest reads an update_engine request, bounded to MaxBody.
func ParseRequest(r io.Reader) (*Request, error) {
	data, err := readBounded(r)
	if err != nil {
		return nil, err
	}
	var req Request
	if err := unmarshal(data, "request", &req); err != nil {
		return nil, err
	}
	if req.Protocol != "3.0" {
		return nil, fmt.Errorf("protocol %q: only Omaha 3.0 is spoken", req.Protocol)
	}
	if len(req.Apps) == 0 {
		return nil, errors.New("request names no <app>")
	}
	for i, app := range req.Apps {
		if app.AppID == "" {
			return nil, fmt.Errorf("app %d has no appid", i+1)
		}
	}
	return &req, nil
}

// ParseResponse reads an Omaha server's response, bounded to MaxBody.
func ParseResponse(r io.Reader) (*Response, error) {
	data, err := readBounded(r)
	if err != nil {
		return nil, err
	}
	var resp Response
	if err := unmarshal(data, "response", &resp); err != nil {
		return nil, err
	}
	if resp.Protocol != "3.0" {
		return nil, fmt.Errorf("protocol %q: only Omaha 3.0 is spoken", resp.Protocol)
	}
	return &resp, nil
}

// Marshal encodes a request or response with the XML header.
func Marshal(v any) []byte {
	out, err := xml.Marshal(v)
	if err != nil {
		panic("omaha: document does not marshal: " + err.Error())
	}
	return append([]byte(xml.Header), out...)
}

// Offered is what an update check offers: the target version, or, when
// the answer holds floor releases only, the highest floor to ask again
// from. Both are empty for noupdate.
func (uc *UpdateCheck) Offered() (target, floor string, err error) {
	switch uc.Status {
	case "noupdate":
		return "", "", nil
	case "ok":
	default:
		return "", "", fmt.Errorf("updatecheck status %q", uc.Status)
	}
	if len(uc.Manifests) == 0 {
		return "", "", errors.New("update offered without a manifest")
	}
	for _, m := range uc.Manifests {
		if !validVersion(m.Version) {
			return "", "", fmt.Errorf("manifest version %q is not a release version", m.Version)
		}
		switch {
		case m.IsFloor == "true" && m.IsTarget != "true":
			if floor == "" || CompareVersions(m.Version, floor) > 0 {
				floor = m.Version
			}
		case target == "" || CompareVersions(m.Version, target) > 0:
			target = m.Version
		}
	}
	if target != "" {
		return target, "", nil
	}
	return "", floor, nil
}

// App returns the response's answer for appid (braces and case ignored);
// nil when there is none.
func (r *Response) App(appid string) *ResponseApp {
	for i := range r.Apps {
		if sameAppID(r.Apps[i].AppID, appid) {
			return &r.Apps[i]
		}
	}
	return nil
}

func sameAppID(a, b string) bool {
	return strings.EqualFold(strings.Trim(a, "{}"), strings.Trim(b, "{}"))
}
