        return self.clock[worker] <= min(self.clock) + self.bound
