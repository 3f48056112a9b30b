        live = [self.clock[w] for w in range(self.num_workers) if not self.finished[w]]
        return self.clock[worker] < min(live) + self.bound
