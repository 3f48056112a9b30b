    for step in range(n - 2):
        send_index, receive_index = (r + 1 - step) % n, (r - step) % n
        comm.Sendrecv(chunks[send_index], dest=right, sendtag=TAG, recvbuf=chunks[receive_index], source=left, recvtag=TAG)
