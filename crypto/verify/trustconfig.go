package verify

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/poststelle/poststelle/crypto/cert"
	"github.com/poststelle/poststelle/crypto/trust"
	"github.com/poststelle/poststelle/crypto/trustedlist"
	"github.com/poststelle/poststelle/crypto/xmldsig"
)

// maxTrustedListSize caps one trusted list file; the EU LOTL and the
// largest national lists stay below 10 MB.
const maxTrustedListSize = 32 << 20

// TrustConfig says where trust comes from.
type TrustConfig struct {
	// Paths are certificate files (PEM or DER), directories of them, and
	// trusted lists (*.xml, also inside directories). Every certificate
	// becomes a trust anchor; a trusted list contributes its services.
	Paths []string
	// TLSigners are PEM or DER files with the certificates allowed to sign
	// the trusted lists given directly (typically the LOTL's signers, or a
	// national list's). A national list found next to a LOTL may also be
	// signed by a certificate the LOTL's pointer names.
	TLSigners []string
	// TLVersions overrides the accepted TSL versions (default 5 and 6).
	TLVersions []int
	// TLSignerFromKeyInfo accepts a list signed by the certificate in its
	// own KeyInfo. This proves nothing about who made the list; it exists
	// only to repeat the DSS oracle's set-up in tests.
	TLSignerFromKeyInfo bool
}

// LoadTrust builds a trust store from cfg. Any file that cannot be used is
// an error: a silently ignored anchor or list changes verdicts.
func LoadTrust(ctx context.Context, cfg TrustConfig) (*trust.Store, error) {
	store := trust.NewStore()
	signers, err := readCertificates(cfg.TLSigners)
	if err != nil {
		return nil, err
	}
	var certPaths, lists []string
	for _, p := range cfg.Paths {
		fi, err := os.Stat(p)
		if err != nil {
			return nil, fmt.Errorf("verify: trust %s: %w", p, err)
		}
		switch {
		case fi.IsDir():
			certPaths = append(certPaths, p)
			xs, err := filepath.Glob(filepath.Join(p, "*.xml"))
			if err != nil {
				return nil, fmt.Errorf("verify: trust %s: %w", p, err)
			}
			sort.Strings(xs)
			lists = append(lists, xs...)
		case strings.EqualFold(filepath.Ext(p), ".xml"):
			lists = append(lists, p)
		default:
			certPaths = append(certPaths, p)
		}
	}
	if len(certPaths) > 0 {
		if err := store.LoadAnchors(ctx, certPaths...); err != nil {
			return nil, fmt.Errorf("verify: %w", err)
		}
	}
	if err := loadLists(ctx, store, lists, signers, cfg); err != nil {
		return nil, err
	}
	return store, nil
}

type listFile struct {
	path string
	data []byte
	info *trustedlist.TrustedList // unverified, for type and territory only
}

// loadLists loads the lists of lists first, so that their pointers can
// vouch for the signers of the national lists next to them.
func loadLists(ctx context.Context, store *trust.Store, paths []string, signers []*cert.Certificate, cfg TrustConfig) error {
	var lotls, national []listFile
	for _, p := range paths {
		if err := ctx.Err(); err != nil {
			return err
		}
		data, err := readCapped(p, maxTrustedListSize)
		if err != nil {
			return fmt.Errorf("verify: trusted list %s: %w", p, err)
		}
		info, err := trustedlist.Parse(data, xmldsig.Limits{})
		if err != nil {
			return fmt.Errorf("verify: trusted list %s: %w", p, err)
		}
		lf := listFile{path: p, data: data, info: info}
		if info.IsLOTL() {
			lotls = append(lotls, lf)
		} else {
			national = append(national, lf)
		}
	}
	var verifiedLOTLs []*trustedlist.TrustedList
	for _, lf := range lotls {
		tl, err := loadList(lf, signers, cfg)
		if err != nil {
			return err
		}
		verifiedLOTLs = append(verifiedLOTLs, tl)
	}
	for _, lf := range national {
		allowed := append([]*cert.Certificate(nil), signers...)
		for _, l := range verifiedLOTLs {
			allowed = append(allowed, l.SigningCertificatesFor(lf.info.SchemeTerritory)...)
		}
		tl, err := loadList(lf, allowed, cfg)
		if err != nil {
			return err
		}
		if err := store.AddTrustedList(tl); err != nil {
			return fmt.Errorf("verify: trusted list %s: %w", lf.path, err)
		}
	}
	return nil
}

func loadList(lf listFile, signers []*cert.Certificate, cfg TrustConfig) (*trustedlist.TrustedList, error) {
	if cfg.TLSignerFromKeyInfo {
		_, sig, err := xmldsig.ParseAndVerify(lf.data, xmldsig.Limits{}, xmldsig.Options{})
		if err != nil {
			return nil, fmt.Errorf("verify: trusted list %s: %w", lf.path, err)
		}
		signers = append(signers, sig.Signer)
	}
	if len(signers) == 0 {
		return nil, fmt.Errorf("verify: trusted list %s: no signing certificate configured (--tl-signer, or a list of lists pointing to it)", lf.path)
	}
	tl, err := trustedlist.Load(lf.data, trustedlist.Config{SigningCertificates: signers, AcceptedVersions: cfg.TLVersions})
	if err != nil {
		return nil, fmt.Errorf("verify: trusted list %s: %w", lf.path, err)
	}
	return tl, nil
}

func readCertificates(paths []string) ([]*cert.Certificate, error) {
	var out []*cert.Certificate
	for _, p := range paths {
		data, err := readCapped(p, 1<<20)
		if err != nil {
			return nil, fmt.Errorf("verify: certificate %s: %w", p, err)
		}
		cs, err := cert.ParseAll(data)
		if err != nil {
			return nil, fmt.Errorf("verify: certificate %s: %w", p, err)
		}
		out = append(out, cs...)
	}
	return out, nil
}

// readCapped reads a whole file, refusing one larger than max.
func readCapped(path string, max int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > max {
		return nil, fmt.Errorf("larger than %d bytes", max)
	}
	return data, nil
}
