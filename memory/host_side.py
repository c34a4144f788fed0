"""What the host's memory manager may do to the budget's components (a base of VramBudget: memory/budget.py), and
how far: shrink an idle streamable one a unit at a time instead of dropping it, grow one back no further than the
room the running stage leaves, and unload one; a component in use is never shrunk, and when the host asks to
unload it, it stays counted (its weights are still on the device) until its stage ends, then goes."""

from .accounting import collect_if_alive, empty_cache, watch
from .room import device_free


class HostSide:
    def shrink(self, key: tuple, nbytes: int) -> int:
        """Free about `nbytes` of an idle streamable component's device memory by streaming its units, last
        first; the bytes freed."""
        with self._lock:
            record = self.records.get(key)
            if record is None or record.module is None or record.streamer is None or record.in_use:
                return 0
            freed = 0
            for unit in reversed(record.streamer.units):
                if freed >= nbytes:
                    break
                freed += record.streamer.stream_out(unit)
            record.nbytes -= freed
        empty_cache(record.device)
        return freed

    def grow(self, key: tuple, nbytes: float) -> int:
        """Bring a streamed component's units back, first first, while they fit `nbytes`, the budget, and the
        device's free memory, each beside what the stage running now needs and has not allocated yet (its
        activations, units in flight, the margin: grown between forwards, none of it is allocated); the bytes
        brought back."""
        with self._lock:
            record = self.records.get(key)
            if record is None or record.module is None or record.streamer is None:
                return 0
            device = record.device
            working = self.working_in_use(device)
            room = min(
                nbytes,
                self.budget_for(device) - self.resident_bytes(device) - working,
                device_free(device) - self.reserve(device) - working,
            )
            grown = 0
            for unit in record.streamer.units:
                size = record.streamer.unit_bytes(unit) if unit in record.streamer.streamed else 0
                if size and grown + size <= room:
                    grown += record.streamer.bring_back(unit)
            record.nbytes += grown
            if record.in_use and not record.streamed:
                record.in_flight = 0  # nothing streams any more: no unit in flight
            return grown

    def unloaded_by_host(self, key: tuple) -> None:
        """The host's manager unloads the component. Idle, its weights go now, and the record (and the host's
        handle, which the host is still iterating over) is forgotten the next time the budget acts. In use, it
        stays, counted, until its stage ends (`use` then lets it go)."""
        with self._lock:
            record = self.records.get(key)
            if record is None:
                return
            if record.in_use:
                record.unloaded = True
                return
            self.records.pop(key)
            gone = watch(record.module)
            record.module, record.streamer = None, None
            self._unloaded.append(record)
        collect_if_alive(gone)
        empty_cache(record.device)

    def _forget_unloaded(self) -> None:
        self._unloaded.clear()
