    for step in range(n - 1):
        send_index, receive_index = (r - step) % n, (r - step - 1) % n
        received = inbox[: chunks[receive_index].size]
        comm.Sendrecv(chunks[send_index], dest=right, sendtag=TAG, recvbuf=received, source=left, recvtag=TAG)
        chunks[receive_index] += received
    return r
