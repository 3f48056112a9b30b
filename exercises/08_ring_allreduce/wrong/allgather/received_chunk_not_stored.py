    inbox = np.empty(max(c.size for c in chunks), dtype=np.float32)
    for step in range(n - 1):
        send_index, receive_index = (r + 1 - step) % n, (r - step) % n
        comm.Sendrecv(chunks[send_index], dest=right, sendtag=TAG, recvbuf=inbox[: chunks[receive_index].size], source=left, recvtag=TAG)
