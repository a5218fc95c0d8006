package sqlitelog

import (
	"context"
	"time"
)

// walCheckpointBytes is about how much the commits write to the WAL before
// the writer asks for a checkpoint: SQLite's own automatic checkpoint runs
// at 1,000 pages (4 MB).
const walCheckpointBytes = 4 << 20

// walRowOverhead estimates what one event adds to the WAL besides its
// payload: its row's other columns and its entries in the three indexes.
const walRowOverhead = 512

// requestCheckpoint counts what a committed batch wrote and asks the
// checkpointer for a checkpoint once enough has accumulated.
//
// SQLite's automatic checkpoint would run inside the writer's commit:
// about a tenth of the writer's time went to copying WAL frames into the
// database while the appenders waited. The writer connection has it off
// (wal_autocheckpoint(0)) and a second connection checkpoints on another
// goroutine, which WAL allows while the writer goes on committing. SQLite
// starts the WAL over only when a write transaction begins with every frame
// copied, which a checkpoint racing the writer never achieves; so after each
// background pass the writer copies the few frames committed meanwhile
// itself, between two commits.
func (l *Log) requestCheckpoint(batch []*appendReq) {
	select {
	case <-l.ckptPassed:
		l.finishCheckpoint()
	default:
	}
	for _, r := range batch {
		for i := range r.events {
			l.walBytes += len(r.events[i].Data) + walRowOverhead
		}
	}
	if l.walBytes < walCheckpointBytes {
		return
	}
	l.walBytes = 0
	select {
	case l.ckpt <- struct{}{}:
	default: // one is pending already
	}
}

// checkpointer runs the checkpoints the writer asks for until the writer
// ends; closing the last connection checkpoints what is left.
func (l *Log) checkpointer() {
	defer close(l.ckptDone)
	for range l.ckpt {
		l.checkpoint()
		select {
		case l.ckptPassed <- struct{}{}:
		default:
		}
	}
}

// finishCheckpoint is the writer's part of a checkpoint: the frames
// committed since the checkpointer's pass began.
func (l *Log) finishCheckpoint() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var busy, frames, copied int
	if err := l.wdb.QueryRowContext(ctx, `PRAGMA wal_checkpoint(PASSIVE)`).Scan(&busy, &frames, &copied); err != nil {
		l.cfg.Logger.Warn("event log WAL checkpoint failed", "path", l.cfg.Path, "err", err)
	}
}

// checkpoint copies what it can of the WAL into the database without
// waiting for readers (PASSIVE); the writer restarts the WAL from its
// beginning once a checkpoint has copied all of it.
func (l *Log) checkpoint() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var busy, frames, copied int
	if err := l.cdb.QueryRowContext(ctx, `PRAGMA wal_checkpoint(PASSIVE)`).Scan(&busy, &frames, &copied); err != nil {
		l.cfg.Logger.Warn("event log WAL checkpoint failed", "path", l.cfg.Path, "err", err)
		return
	}
	if frames > 4*walCheckpointBytes/4096 && copied < frames/2 {
		l.cfg.Logger.Warn("event log WAL keeps growing: readers hold old frames", "path", l.cfg.Path, "frames", frames, "copied", copied)
	}
}
