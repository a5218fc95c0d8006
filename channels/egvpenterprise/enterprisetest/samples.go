package enterprisetest

import (
	"archive/zip"
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// SampleZIP packs an exported message directory (one of testdata/egvp/Messages) into
// the ZIP receiveMessage returns: the directory's tree with forward-slash names,
// in lexical order, with a fixed time so that the bytes are the same every time.
// replace, when given, puts other contents in place of files (by their ZIP name).
func SampleZIP(dir string, replace ...map[string][]byte) ([]byte, error) {
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	stamp := time.Date(2021, 12, 8, 11, 3, 55, 0, time.UTC)
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, r := range replace {
			if d, ok := r[filepath.ToSlash(rel)]; ok {
				data = d
			}
		}
		w, err := zw.CreateHeader(&zip.FileHeader{Name: filepath.ToSlash(rel), Method: zip.Deflate, Modified: stamp})
		if err != nil {
			return err
		}
		_, err = w.Write(data)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("enterprisetest: packing %s: %w", dir, err)
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
