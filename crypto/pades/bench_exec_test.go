package pades_test

import (
	"os"
	"os/exec"
)

func runChild(exe, path string) ([]byte, error) {
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), rssFileEnv+"="+path)
	return cmd.Output()
}
