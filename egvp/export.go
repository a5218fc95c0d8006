package egvp

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strings"

	"github.com/poststelle/poststelle/osci"
)

// The files of an EGVP Enterprise export (what receiveMessage's messageZIP holds and
// the three samples in testdata/egvp/Messages are) that ReadExport reads.
const (
	// ExportMessage is the OSCI message as the receiver holds it: the body decrypted,
	// the control block emptied.
	ExportMessage = "oscicontentdata.osci"
	// ExportAttachments is the folder of the attachments, named by their Content-ID.
	ExportAttachments = "attachments"
	// ExportInspection is Enterprise's verification report (urn:bos:vr:profile),
	// with its verdict on the proof of origin.
	ExportInspection = "summarisedinspectionsheet.xml"
	// ExportProps is the EGVPMessageProps (testdata/egvp/Models/EGVPMessagePropsType.xsd).
	ExportProps = "MsgProps.xml"
)

// maxReportBytes caps the check report and MsgProps read into memory.
const maxReportBytes = 4 << 20

// EnterpriseCheck is what EGVP Enterprise reported about the transport of a message
// it received: the proof of origin it checked, which Poststelle cannot check again
// (the export no longer verifies, see testdata/README.md).
type EnterpriseCheck struct {
	// ProofOfOrigin is the verification report's OSCIMessageInfo/ProofOfOrigin
	// (VHN_beBPo_valid, VHN_Justiz_valid, ...), "" when it states none.
	ProofOfOrigin string
	// VhnText is MsgProps' VhnText, the route as Enterprise words it.
	VhnText string
}

// ReadExport gives an EGVP Enterprise export its EGVP meaning, as Read does for an
// OSCI delivery: the envelope is the SOAP part of oscicontentdata.osci (only that part
// is read; the attachments are taken from attachments/, which Enterprise writes
// decoded), and the proof of origin rests on Enterprise's check of the transport
// signature instead of the intermediary's process card. An export without
// oscicontentdata.osci is an error wrapping ErrNotEGVP.
func ReadExport(ctx context.Context, fsys fs.FS, cfg Config, lim Limits) (*Message, error) {
	f, err := fsys.Open(ExportMessage)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: the export has no %s", ErrNotEGVP, ExportMessage)
	}
	if err != nil {
		return nil, fmt.Errorf("egvp: opening %s: %w", ExportMessage, err)
	}
	raw, err := osci.ReadEnvelope(ctx, f, osci.Limits{})
	f.Close()
	if err != nil {
		return nil, fmt.Errorf("egvp: %s: %w", ExportMessage, err)
	}
	env, err := osci.ParseEnvelope(raw, osci.Limits{})
	if err != nil {
		return nil, fmt.Errorf("egvp: %s: %w", ExportMessage, err)
	}
	check, problems := readEnterpriseCheck(fsys)
	d := Delivery{Envelope: env, Attachment: exportAttachments(fsys), Enterprise: check}
	m, err := Read(ctx, d, cfg, lim)
	if err != nil {
		return nil, err
	}
	m.Problems = append(problems, m.Problems...)
	return m, nil
}

// exportAttachments finds an attachment by its Content-ID in attachments/. A
// Content-ID that is not a plain file name finds nothing.
func exportAttachments(fsys fs.FS) func(string) *osci.Part {
	return func(cid string) *osci.Part {
		name := ExportAttachments + "/" + cid
		if cid == "" || strings.ContainsAny(cid, `/\`) || !fs.ValidPath(name) {
			return nil
		}
		f, err := fsys.Open(name)
		if err != nil {
			return nil
		}
		defer f.Close()
		h := sha256.New()
		n, err := io.Copy(h, f)
		if err != nil {
			return nil
		}
		p := &osci.Part{ContentID: cid, Size: n, Data: exportFile{fsys, name}}
		copy(p.SHA256[:], h.Sum(nil))
		return p
	}
}

type exportFile struct {
	fsys fs.FS
	name string
}

func (e exportFile) Open() (io.ReadCloser, error) { return e.fsys.Open(e.name) }

// readEnterpriseCheck reads Enterprise's verdicts; what is unreadable is a problem,
// and the proof of origin then rests on nothing.
func readEnterpriseCheck(fsys fs.FS) (*EnterpriseCheck, []string) {
	c := &EnterpriseCheck{}
	var problems []string
	var report struct {
		Docs []struct {
			ProofOfOrigin string `xml:"Other>OSCIMessageInfo>ProofOfOrigin"`
		} `xml:"DocumentList>Document"`
	}
	if err := readSmallXML(fsys, ExportInspection, &report); err != nil {
		problems = append(problems, err.Error())
	}
	for _, d := range report.Docs {
		if v := strings.TrimSpace(d.ProofOfOrigin); v != "" {
			if c.ProofOfOrigin != "" && c.ProofOfOrigin != v {
				problems = append(problems, fmt.Sprintf("%s states two proofs of origin, %q and %q", ExportInspection, c.ProofOfOrigin, v))
			}
			c.ProofOfOrigin = v
		}
	}
	var props struct {
		VhnText string `xml:"VhnText"`
	}
	if err := readSmallXML(fsys, ExportProps, &props); err != nil {
		problems = append(problems, err.Error())
	}
	c.VhnText = strings.TrimSpace(props.VhnText)
	return c, problems
}

func readSmallXML(fsys fs.FS, name string, v any) error {
	f, err := fsys.Open(name)
	if err != nil {
		return fmt.Errorf("the export has no readable %s: %v", name, err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxReportBytes+1))
	if err != nil {
		return fmt.Errorf("%s: %v", name, err)
	}
	if len(data) > maxReportBytes {
		return fmt.Errorf("%s: more than %d bytes; not read", name, maxReportBytes)
	}
	d := xml.NewDecoder(bytes.NewReader(data))
	if err := d.Decode(v); err != nil {
		return fmt.Errorf("%s: %v", name, err)
	}
	return nil
}
